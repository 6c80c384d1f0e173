"""Doubles of the third parties the controllers drive (Docker swarm, Cumulus ACL switch)."""
