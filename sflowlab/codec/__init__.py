"""sFlow v5 codec: one declaration per structure drives decoding and encoding. Stdlib only."""

from ._compile import BY_NAME, REGISTRY, Raw, data_format
from ._errors import CodecError, DecodeError, EncodeError, TruncatedError
from .counter_records import (
    AppOperations, AppResources, AppWorkers, EthernetCounters, HostAdapter, HostAdapters, HostCpu,
    HostDescr, HostDiskIo, HostMemory, HostNetIo, HostParent, HttpCounters, IfCounters,
    Mib2IcmpGroup, Mib2IpGroup, Mib2TcpGroup, Mib2UdpGroup, PortName, Processor, VirtCpu,
    VirtDiskIo, VirtMemory, VirtNetIo, VirtNode, VlanCounters,
)
from .datagram import Exporter, decode_datagram, encode_datagram, encode_sample, header_bytes
from .flow_records import (
    AsPathSegment, ExtendedEntities, ExtendedGateway, ExtendedProxySocketIpv4,
    ExtendedProxySocketIpv6, ExtendedRouter, ExtendedSocketIpv4, ExtendedSocketIpv6,
    ExtendedSwitch, ExtendedTcpInfo, ExtendedUrl, ExtendedUser, HttpRequest, SampledEthernet,
    SampledHeader, SampledIpv4, SampledIpv6,
)
from .samples import (
    COUNTER_SAMPLES, FLOW_SAMPLES, INTERNAL, CountersSample, CountersSampleExpanded, Datagram,
    DiscardedPacket, FlowSample, FlowSampleExpanded, data_source,
)

__all__ = [
    "BY_NAME", "COUNTER_SAMPLES", "FLOW_SAMPLES", "INTERNAL", "REGISTRY", "AppOperations",
    "AppResources", "AppWorkers", "AsPathSegment", "CodecError", "CountersSample",
    "CountersSampleExpanded", "Datagram", "DecodeError", "DiscardedPacket", "EncodeError",
    "EthernetCounters", "Exporter", "ExtendedEntities", "ExtendedGateway",
    "ExtendedProxySocketIpv4", "ExtendedProxySocketIpv6", "ExtendedRouter", "ExtendedSocketIpv4",
    "ExtendedSocketIpv6", "ExtendedSwitch", "ExtendedTcpInfo", "ExtendedUrl", "ExtendedUser",
    "FlowSample", "FlowSampleExpanded", "HostAdapter", "HostAdapters", "HostCpu", "HostDescr",
    "HostDiskIo", "HostMemory", "HostNetIo", "HostParent", "HttpCounters", "HttpRequest",
    "IfCounters", "Mib2IcmpGroup", "Mib2IpGroup", "Mib2TcpGroup", "Mib2UdpGroup", "PortName",
    "Processor", "Raw", "SampledEthernet", "SampledHeader", "SampledIpv4", "SampledIpv6",
    "TruncatedError", "VirtCpu", "VirtDiskIo", "VirtMemory", "VirtNetIo", "VirtNode",
    "VlanCounters", "data_format", "data_source", "decode_datagram", "encode_datagram",
    "encode_sample", "header_bytes",
]
