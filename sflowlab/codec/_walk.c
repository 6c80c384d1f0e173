/* sflowlab.codec._walk: the collector's sample walk in C (optional accelerator).
 *
 * samples(buf, off, end, count, agent, sub_agent_id, sequence, uptime) is
 * sflowlab.codec.fast._samples_py in C: the same CollectorDatagram and FlowSampleView
 * objects, the same TruncatedError (message, offset, path) at the same points, the same
 * bad_samples count; counter samples go to the Python _counter_sample. usual_datagram(buf)
 * reads the usual datagram header (version 5, IPv4 agent) too, or gives None for any other.
 *
 * Every flow sample whose sampled_header has the usual Ethernet/IPv4/TCP-or-UDP layout
 * (headers.eth_ip4_keys) gets its keys() dict built here, equal to what keys() computes in
 * Python, key order included; any other sample keeps no _keys and keys() parses its header
 * in Python on first use. tests/codec/test_walk.py compares both on every kind of input.
 *
 * configure(...) hands over the Python objects once (fast.py does it at import), and the
 * layout: the offsets and tags of the datagram header, the three flow sample forms,
 * sampled_header and extended_switch, and of the usual header's fields, computed from the
 * codec's declarations and headers.ETH_IP4_L4 by codec/layout.py (fast._C_LAYOUT), so no
 * layout is restated here. Lengths
 * and counts read from the buffer are untrusted 32-bit values: every bound is checked as a
 * difference of offsets already inside the buffer (size_t), never as a sum that could wrap.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ configured objects */

static PyTypeObject *flow_view_type;  /* fast.FlowSampleView: 17 fields */
static PyTypeObject *datagram_type;   /* fast.CollectorDatagram: 7 fields */
static PyObject *truncated_error;     /* _errors.TruncatedError */
static PyObject *counter_sample;      /* fast._counter_sample(buf, off, stop, tag) */
static PyObject *tcp_flags;           /* headers.TCP_FLAGS: 512 str */
static PyObject *ip_tos;              /* headers.IP_TOS: 256 str */
static PyObject *drop_reasons;        /* samples.DROP_REASONS: dict int -> str */
static PyObject *output_keys;         /* fast._OUTPUT_KEYS: dict int -> str */
static PyObject *internal_value;      /* samples.INTERNAL */

#define FLOW_VIEW_FIELDS 17
#define DATAGRAM_FIELDS 7
#define ALL_ONES 0xFFFFFFFFu
#define MAX_VLAN 4095u
#define ELEMENT 8        /* a TLV element's data_format and length words (layout.ELEMENT) */

/* ------------------------------------------------------------------ layouts */

/* Byte offsets from the start of each structure, its size, and its tag: configure(layout=)
 * fills them by name ("flow.sampling_rate") and checks that every field lies inside its
 * structure, so each read below is bounded by the size check that precedes it. */
static struct {
    uint32_t dg_size, dg_sub_agent, dg_sequence, dg_uptime, dg_count;
    uint32_t flow_tag, flow_size, flow_seq, flow_source_id, flow_rate, flow_pool, flow_drops,
        flow_input, flow_output, flow_records;
    uint32_t fx_tag, fx_size, fx_seq, fx_kind, fx_index, fx_rate, fx_pool, fx_drops, fx_input,
        fx_out_format, fx_output, fx_records;
    uint32_t dp_tag, dp_size, dp_seq, dp_kind, dp_index, dp_drops, dp_input, dp_output,
        dp_reason, dp_records;
    uint32_t counters_tag, counters_x_tag;
    uint32_t hdr_tag, hdr_size, hdr_protocol, hdr_frame_length, hdr_stripped, hdr_length;
    uint32_t sw_tag, sw_size, sw_src_vlan, sw_dst_vlan;
    /* the usual header's first bytes as headers.ETH_IP4_L4 unpacks them for eth_ip4_keys */
    uint32_t u_size, u_dst, u_src, u_etype, u_vihl, u_tos, u_total, u_frag, u_ttl, u_proto,
        u_sip, u_dip, u_sport, u_dport, u_off_ns, u_flags;
} L;

/* name in the layout dict, where it goes, the size it must fit in (NULL: a tag) and its
 * width in bytes */
static const struct {
    const char *name;
    uint32_t *value;
    const uint32_t *within;
    uint32_t width;
} layout_names[] = {
    {"datagram.size", &L.dg_size, &L.dg_size, 4},
    {"datagram.sub_agent_id", &L.dg_sub_agent, &L.dg_size, 4},
    {"datagram.sequence_number", &L.dg_sequence, &L.dg_size, 4},
    {"datagram.uptime_ms", &L.dg_uptime, &L.dg_size, 4},
    {"datagram.samples", &L.dg_count, &L.dg_size, 4},
    {"flow_sample.tag", &L.flow_tag, NULL, 4},
    {"flow_sample.size", &L.flow_size, &L.flow_size, 4},
    {"flow_sample.sequence_number", &L.flow_seq, &L.flow_size, 4},
    {"flow_sample.source_id", &L.flow_source_id, &L.flow_size, 4},
    {"flow_sample.sampling_rate", &L.flow_rate, &L.flow_size, 4},
    {"flow_sample.sample_pool", &L.flow_pool, &L.flow_size, 4},
    {"flow_sample.drops", &L.flow_drops, &L.flow_size, 4},
    {"flow_sample.input", &L.flow_input, &L.flow_size, 4},
    {"flow_sample.output", &L.flow_output, &L.flow_size, 4},
    {"flow_sample.records", &L.flow_records, &L.flow_size, 4},
    {"flow_sample_expanded.tag", &L.fx_tag, NULL, 4},
    {"flow_sample_expanded.size", &L.fx_size, &L.fx_size, 4},
    {"flow_sample_expanded.sequence_number", &L.fx_seq, &L.fx_size, 4},
    {"flow_sample_expanded.source_id_type", &L.fx_kind, &L.fx_size, 4},
    {"flow_sample_expanded.source_id_index", &L.fx_index, &L.fx_size, 4},
    {"flow_sample_expanded.sampling_rate", &L.fx_rate, &L.fx_size, 4},
    {"flow_sample_expanded.sample_pool", &L.fx_pool, &L.fx_size, 4},
    {"flow_sample_expanded.drops", &L.fx_drops, &L.fx_size, 4},
    {"flow_sample_expanded.input_value", &L.fx_input, &L.fx_size, 4},
    {"flow_sample_expanded.output_format", &L.fx_out_format, &L.fx_size, 4},
    {"flow_sample_expanded.output_value", &L.fx_output, &L.fx_size, 4},
    {"flow_sample_expanded.records", &L.fx_records, &L.fx_size, 4},
    {"discarded_packet.tag", &L.dp_tag, NULL, 4},
    {"discarded_packet.size", &L.dp_size, &L.dp_size, 4},
    {"discarded_packet.sequence_number", &L.dp_seq, &L.dp_size, 4},
    {"discarded_packet.source_id_type", &L.dp_kind, &L.dp_size, 4},
    {"discarded_packet.source_id_index", &L.dp_index, &L.dp_size, 4},
    {"discarded_packet.drops", &L.dp_drops, &L.dp_size, 4},
    {"discarded_packet.input", &L.dp_input, &L.dp_size, 4},
    {"discarded_packet.output", &L.dp_output, &L.dp_size, 4},
    {"discarded_packet.reason", &L.dp_reason, &L.dp_size, 4},
    {"discarded_packet.records", &L.dp_records, &L.dp_size, 4},
    {"counters_sample.tag", &L.counters_tag, NULL, 4},
    {"counters_sample_expanded.tag", &L.counters_x_tag, NULL, 4},
    {"sampled_header.tag", &L.hdr_tag, NULL, 4},
    {"sampled_header.size", &L.hdr_size, &L.hdr_size, 4},
    {"sampled_header.header_protocol", &L.hdr_protocol, &L.hdr_size, 4},
    {"sampled_header.frame_length", &L.hdr_frame_length, &L.hdr_size, 4},
    {"sampled_header.stripped", &L.hdr_stripped, &L.hdr_size, 4},
    {"sampled_header.header", &L.hdr_length, &L.hdr_size, 4},
    {"extended_switch.tag", &L.sw_tag, NULL, 4},
    {"extended_switch.size", &L.sw_size, &L.sw_size, 4},
    {"extended_switch.src_vlan", &L.sw_src_vlan, &L.sw_size, 4},
    {"extended_switch.dst_vlan", &L.sw_dst_vlan, &L.sw_size, 4},
    {"usual.size", &L.u_size, &L.u_size, 4},
    {"usual.dst", &L.u_dst, &L.u_size, 6},
    {"usual.src", &L.u_src, &L.u_size, 6},
    {"usual.etype", &L.u_etype, &L.u_size, 2},
    {"usual.vihl", &L.u_vihl, &L.u_size, 1},
    {"usual.tos", &L.u_tos, &L.u_size, 1},
    {"usual.total", &L.u_total, &L.u_size, 2},
    {"usual.frag", &L.u_frag, &L.u_size, 2},
    {"usual.ttl", &L.u_ttl, &L.u_size, 1},
    {"usual.proto", &L.u_proto, &L.u_size, 1},
    {"usual.sip", &L.u_sip, &L.u_size, 4},
    {"usual.dip", &L.u_dip, &L.u_size, 4},
    {"usual.sport", &L.u_sport, &L.u_size, 2},
    {"usual.dport", &L.u_dport, &L.u_size, 2},
    {"usual.off_ns", &L.u_off_ns, &L.u_size, 1},
    {"usual.flags", &L.u_flags, &L.u_size, 1},
};
#define LAYOUT_NAMES (sizeof layout_names / sizeof layout_names[0])
#define MAX_LAYOUT 256 /* no head is this long: a bound for the sizes handed over */

/* ------------------------------------------------------------------ key names, templates */

enum {
    K_MACDST, K_MACSRC, K_ETHPROTO, K_IPSRC, K_IPDST, K_IPPROTO, K_IPTOS, K_IPDSCP, K_IPECN,
    K_IPTTL, K_IPBYTES, K_TCPSPORT, K_TCPDPORT, K_TCPFLAGS, K_UDPSPORT, K_UDPDPORT, K_STACK,
    K_INPUT, K_OUTPUT, K_VLAN, K_REASON, K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "macdestination", "macsource", "ethernetprotocol", "ipsource", "ipdestination",
    "ipprotocol", "iptos", "ipdscp", "ipecn", "ipttl", "ipbytes", "tcpsourceport",
    "tcpdestinationport", "tcpflags", "udpsourceport", "udpdestinationport", "stack",
    "inputifindex", "outputifindex", "vlan", "reason",
};

static PyObject *names[K_COUNT]; /* interned */
static PyObject *keys_attr;      /* "_keys" */

/* templates[tcp][vlan][reason]: every key of the result in its final order (headers'
 * _TCP_KEYS/_UDP_KEYS, then inputifindex, outputifindex, vlan, reason) with the constant
 * values set; a sample's dict is a copy whose other values are then replaced in place
 * (replacing keeps the order and never resizes). */
static PyObject *templates[2][2][2];

static int
build_templates(void)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        for (int vlan = 0; vlan < 2; vlan++) {
            for (int reason = 0; reason < 2; reason++) {
                int order[K_COUNT], n = 0;
                for (int k = K_MACDST; k <= K_IPBYTES; k++)
                    order[n++] = k;
                if (tcp) {
                    order[n++] = K_TCPSPORT;
                    order[n++] = K_TCPDPORT;
                    order[n++] = K_TCPFLAGS;
                } else {
                    order[n++] = K_UDPSPORT;
                    order[n++] = K_UDPDPORT;
                }
                order[n++] = K_STACK;
                order[n++] = K_INPUT;
                order[n++] = K_OUTPUT;
                if (vlan)
                    order[n++] = K_VLAN;
                if (reason)
                    order[n++] = K_REASON;
                PyObject *d = PyDict_New();
                if (d == NULL)
                    return -1;
                templates[tcp][vlan][reason] = d;
                for (int j = 0; j < n; j++) {
                    PyObject *value;
                    if (order[j] == K_ETHPROTO)
                        value = PyLong_FromLong(0x0800);
                    else if (order[j] == K_IPPROTO)
                        value = PyLong_FromLong(tcp ? 6 : 17);
                    else if (order[j] == K_STACK)
                        value = PyUnicode_FromString(tcp ? "eth.ip.tcp" : "eth.ip.udp");
                    else
                        value = Py_NewRef(Py_None);
                    if (value == NULL)
                        return -1;
                    int rc = PyDict_SetItem(d, names[order[j]], value);
                    Py_DECREF(value);
                    if (rc < 0)
                        return -1;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static inline uint32_t
rd32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline unsigned
rd16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static inline PyObject *
u32(uint32_t v)
{
    return PyLong_FromUnsignedLong((unsigned long)v);
}

/* A tuple subclass instance from n new references (stolen, also on failure), as
 * tuple.__new__(type, items) makes it. */
static PyObject *
new_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n)
{
    PyObject *t = type->tp_alloc(type, n);
    if (t == NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            Py_DECREF(items[i]);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    ((PyTupleObject *)t)->ob_hash = -1; /* 3.14+ caches a tuple's hash; -1: not computed */
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, items[i]);
    return t;
}

/* Sets d[key] = value and drops the reference to value (NULL value: an error pending). */
static inline int
set_steal(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

/* Address texts, remembered in small direct-mapped caches (a collector sees the same
 * addresses again and again; a collision replaces the entry, so the memory is bounded). */
#define CACHE_BITS 12
typedef struct {
    uint64_t key; /* the address bytes, plus bit 63 so that no valid key is 0 */
    PyObject *text;
} cache_entry;
static cache_entry mac_cache[1 << CACHE_BITS];
static cache_entry ip4_cache[1 << CACHE_BITS];

static inline cache_entry *
cache_slot(cache_entry *cache, uint64_t key)
{
    return &cache[(size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - CACHE_BITS))];
}

static PyObject *
cache_put(cache_entry *e, uint64_t key, PyObject *text)
{
    if (text == NULL)
        return NULL;
    Py_XSETREF(e->text, Py_NewRef(text));
    e->key = key;
    return text;
}

/* 12 uppercase hex digits (bytes.hex().upper()). */
static PyObject *
mac_text(const unsigned char *p)
{
    static const char hex[] = "0123456789ABCDEF";
    uint64_t key = (1ull << 63) | ((uint64_t)rd16(p) << 32) | rd32(p + 2);
    cache_entry *e = cache_slot(mac_cache, key);
    if (e->text != NULL && e->key == key)
        return Py_NewRef(e->text);
    PyObject *text = PyUnicode_New(12, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (int i = 0; i < 6; i++) {
        out[2 * i] = (Py_UCS1)hex[p[i] >> 4];
        out[2 * i + 1] = (Py_UCS1)hex[p[i] & 15];
    }
    return cache_put(e, key, text);
}

/* Dotted quad (socket.inet_ntoa). */
static PyObject *
ip4_text(const unsigned char *p)
{
    uint64_t key = (1ull << 63) | rd32(p);
    cache_entry *e = cache_slot(ip4_cache, key);
    if (e->text != NULL && e->key == key)
        return Py_NewRef(e->text);
    char tmp[16];
    Py_ssize_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = p[i];
        if (i)
            tmp[n++] = '.';
        if (v >= 100)
            tmp[n++] = (char)('0' + v / 100);
        if (v >= 10)
            tmp[n++] = (char)('0' + v / 10 % 10);
        tmp[n++] = (char)('0' + v % 10);
    }
    PyObject *text = PyUnicode_New(n, 127);
    if (text == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(text), tmp, (size_t)n);
    return cache_put(e, key, text);
}

static void
cache_clear(cache_entry *cache)
{
    for (size_t i = 0; i < (size_t)1 << CACHE_BITS; i++) {
        Py_CLEAR(cache[i].text);
        cache[i].key = 0;
    }
}

/* ------------------------------------------------------------------ flow keys */

/* The first L.u_size bytes of a header are the layout eth_ip4_keys accepts: untagged
 * Ethernet, IPv4 without options, first or only fragment, TCP or UDP. */
static inline int
usual_header(const unsigned char *h)
{
    return rd16(h + L.u_etype) == 0x0800 && h[L.u_vihl] == 0x45
           && !(rd16(h + L.u_frag) & 0x1FFF) && (h[L.u_proto] == 6 || h[L.u_proto] == 17);
}

/* FlowSampleView.keys() of a sample with a usual header: eth_ip4_keys then _sample_keys.
 * inp, out: the view's input and output objects; vlan, reason: the view's src_vlan (NULL
 * when absent or above 4095) and reason (NULL when not discarded). */
static PyObject *
usual_keys(const unsigned char *h, PyObject *inp, PyObject *out, uint32_t out_format,
           PyObject *vlan, PyObject *reason)
{
    int tcp = h[L.u_proto] == 6;
    unsigned tos = h[L.u_tos];
    PyObject *d = PyDict_Copy(templates[tcp][vlan != NULL][reason != NULL]);
    if (d == NULL)
        return NULL;
    if (set_steal(d, names[K_MACDST], mac_text(h + L.u_dst)) < 0
        || set_steal(d, names[K_MACSRC], mac_text(h + L.u_src)) < 0
        || set_steal(d, names[K_IPSRC], ip4_text(h + L.u_sip)) < 0
        || set_steal(d, names[K_IPDST], ip4_text(h + L.u_dip)) < 0
        || PyDict_SetItem(d, names[K_IPTOS], PyTuple_GET_ITEM(ip_tos, tos)) < 0
        || set_steal(d, names[K_IPDSCP], PyLong_FromLong(tos >> 2)) < 0
        || set_steal(d, names[K_IPECN], PyLong_FromLong(tos & 3)) < 0
        || set_steal(d, names[K_IPTTL], PyLong_FromLong(h[L.u_ttl])) < 0
        || set_steal(d, names[K_IPBYTES], PyLong_FromLong(rd16(h + L.u_total))) < 0)
        goto error;
    if (tcp) {
        if (set_steal(d, names[K_TCPSPORT], PyLong_FromLong(rd16(h + L.u_sport))) < 0
            || set_steal(d, names[K_TCPDPORT], PyLong_FromLong(rd16(h + L.u_dport))) < 0
            || PyDict_SetItem(d, names[K_TCPFLAGS],
                              PyTuple_GET_ITEM(tcp_flags,
                                               ((h[L.u_off_ns] & 1) << 8) | h[L.u_flags])) < 0)
            goto error;
    } else {
        if (set_steal(d, names[K_UDPSPORT], PyLong_FromLong(rd16(h + L.u_sport))) < 0
            || set_steal(d, names[K_UDPDPORT], PyLong_FromLong(rd16(h + L.u_dport))) < 0)
            goto error;
    }
    if (PyDict_SetItem(d, names[K_INPUT], inp) < 0)
        goto error;
    if (out_format == 0) {
        if (PyDict_SetItem(d, names[K_OUTPUT], out) < 0)
            goto error;
    } else { /* _OUTPUT_KEYS.get(out_format, out) */
        PyObject *format = u32(out_format);
        if (format == NULL)
            goto error;
        PyObject *text = PyDict_GetItemWithError(output_keys, format); /* borrowed */
        Py_DECREF(format);
        if (text == NULL && PyErr_Occurred())
            goto error;
        if (PyDict_SetItem(d, names[K_OUTPUT], text != NULL ? text : out) < 0)
            goto error;
    }
    if (vlan != NULL && PyDict_SetItem(d, names[K_VLAN], vlan) < 0)
        goto error;
    if (reason != NULL) { /* DROP_REASONS.get(reason, str(reason)) */
        PyObject *text = PyDict_GetItemWithError(drop_reasons, reason); /* borrowed */
        if (text != NULL) {
            if (PyDict_SetItem(d, names[K_REASON], text) < 0)
                goto error;
        } else if (PyErr_Occurred() || set_steal(d, names[K_REASON], PyObject_Str(reason)) < 0) {
            goto error;
        }
    }
    return d;
error:
    Py_DECREF(d);
    return NULL;
}

/* ------------------------------------------------------------------ flow samples */

/* view._keys = keys. Up to 3.12 a tuple subclass keeps its instance dict at tp_dictoffset:
 * a new view has none yet, so the dict {"_keys": keys} is put there directly, as the
 * generic setattr would, but cheaper; otherwise the generic way. */
static int
set_keys(PyObject *view, PyObject *keys)
{
#if PY_VERSION_HEX < 0x030D0000
    PyObject **dictptr = _PyObject_GetDictPtr(view);
    if (dictptr != NULL && *dictptr == NULL) {
        PyObject *d = PyDict_New();
        if (d == NULL)
            return -1;
        *dictptr = d;
        return PyDict_SetItem(d, keys_attr, keys);
    }
#endif
    return PyObject_SetAttr(view, keys_attr, keys);
}

enum {
    F_KIND, F_INDEX, F_SEQ, F_RATE, F_POOL, F_DROPS, F_INPUT, F_OUTPUT, F_OUT_FORMAT,
    F_HEADER_PROTOCOL, F_FRAME_LENGTH, F_STRIPPED, F_HEADER, F_SRC_VLAN, F_DST_VLAN,
    F_DISCARDED, F_REASON
};

/* fast._flow_sample: the sample body b[off:stop] of a tag 1, 3 or 5 sample. Returns 1 with
 * *view set, 0 when malformed (a bad sample), -1 with an exception set. */
static int
flow_sample(const unsigned char *b, size_t off, size_t stop, uint32_t tag, PyObject **view)
{
    uint32_t seq, kind, index, rate, pool, drops, inp, out, out_format, nrec, reason = 0;
    if (tag == L.flow_tag) {
        if (stop - off < L.flow_size)
            return 0;
        const unsigned char *p = b + off;
        uint32_t source_id = rd32(p + L.flow_source_id);
        seq = rd32(p + L.flow_seq);
        kind = source_id >> 24;
        index = source_id & 0xFFFFFF;
        rate = rd32(p + L.flow_rate);
        pool = rd32(p + L.flow_pool);
        drops = rd32(p + L.flow_drops);
        inp = rd32(p + L.flow_input) & 0x3FFFFFFF;
        out = rd32(p + L.flow_output);
        out_format = out >> 30;
        out &= 0x3FFFFFFF;
        nrec = rd32(p + L.flow_records);
        off += L.flow_size;
    } else if (tag == L.fx_tag) {
        if (stop - off < L.fx_size)
            return 0;
        const unsigned char *p = b + off;
        seq = rd32(p + L.fx_seq);
        kind = rd32(p + L.fx_kind);
        index = rd32(p + L.fx_index);
        rate = rd32(p + L.fx_rate);
        pool = rd32(p + L.fx_pool);
        drops = rd32(p + L.fx_drops);
        inp = rd32(p + L.fx_input); /* the input format is not reported */
        out_format = rd32(p + L.fx_out_format);
        out = rd32(p + L.fx_output);
        nrec = rd32(p + L.fx_records);
        off += L.fx_size;
    } else {
        if (stop - off < L.dp_size)
            return 0;
        const unsigned char *p = b + off;
        seq = rd32(p + L.dp_seq);
        kind = rd32(p + L.dp_kind);
        index = rd32(p + L.dp_index);
        drops = rd32(p + L.dp_drops);
        inp = rd32(p + L.dp_input);
        out = rd32(p + L.dp_output);
        reason = rd32(p + L.dp_reason);
        nrec = rd32(p + L.dp_records);
        off += L.dp_size;
        rate = 1;
        pool = 0;
        out_format = 0;
    }
    /* expanded ifIndex fields: all ones also means the device itself */
    int inp_internal = tag != L.flow_tag && inp == ALL_ONES;
    int out_internal = tag != L.flow_tag && out == ALL_ONES;
    if (nrec > (stop - off) / ELEMENT)
        return 0;

    uint32_t header_protocol = 0, frame_length = 0, stripped = 0, hlen = 0;
    uint32_t src_vlan = 0, dst_vlan = 0;
    size_t hoff = 0;
    int seen_header = 0, seen_switch = 0;
    for (uint32_t r = 0; r < nrec; r++) {
        if (stop - off < ELEMENT)
            return 0;
        uint32_t rtag = rd32(b + off), rlen = rd32(b + off + 4);
        off += ELEMENT;
        if (rlen > stop - off)
            return 0;
        if (rtag == L.hdr_tag && !seen_header && rlen >= L.hdr_size) {
            uint32_t n = rd32(b + off + L.hdr_length);
            if (L.hdr_size + (((uint64_t)n + 3) & ~(uint64_t)3) <= rlen) {
                header_protocol = rd32(b + off + L.hdr_protocol);
                frame_length = rd32(b + off + L.hdr_frame_length);
                stripped = rd32(b + off + L.hdr_stripped);
                hlen = n;
                hoff = off + L.hdr_size; /* the bytes follow their length word */
                seen_header = 1;
            }
        } else if (rtag == L.sw_tag && !seen_switch && rlen >= L.sw_size) {
            src_vlan = rd32(b + off + L.sw_src_vlan);
            dst_vlan = rd32(b + off + L.sw_dst_vlan);
            seen_switch = 1;
        }
        off += rlen;
    }

    PyObject *items[FLOW_VIEW_FIELDS];
    items[F_KIND] = u32(kind);
    items[F_INDEX] = u32(index);
    items[F_SEQ] = u32(seq);
    items[F_RATE] = u32(rate);
    items[F_POOL] = u32(pool);
    items[F_DROPS] = u32(drops);
    items[F_INPUT] = inp_internal ? Py_NewRef(internal_value) : u32(inp);
    items[F_OUTPUT] = out_internal ? Py_NewRef(internal_value) : u32(out);
    items[F_OUT_FORMAT] = u32(out_format);
    items[F_HEADER_PROTOCOL] = u32(header_protocol);
    items[F_FRAME_LENGTH] = u32(frame_length);
    items[F_STRIPPED] = u32(stripped);
    items[F_HEADER] = PyBytes_FromStringAndSize(seen_header ? (const char *)b + hoff : "",
                                                (Py_ssize_t)hlen);
    items[F_SRC_VLAN] = seen_switch ? u32(src_vlan) : Py_NewRef(Py_None);
    items[F_DST_VLAN] = seen_switch ? u32(dst_vlan) : Py_NewRef(Py_None);
    items[F_DISCARDED] = PyBool_FromLong(tag == L.dp_tag);
    items[F_REASON] = tag == L.dp_tag ? u32(reason) : Py_NewRef(Py_None);
    for (int i = 0; i < FLOW_VIEW_FIELDS; i++) {
        if (items[i] == NULL) {
            for (int j = 0; j < FLOW_VIEW_FIELDS; j++)
                Py_XDECREF(items[j]);
            return -1;
        }
    }

    PyObject *keys = NULL;
    if (header_protocol == 1 && hlen >= L.u_size && usual_header(b + hoff)) {
        keys = usual_keys(b + hoff, items[F_INPUT], items[F_OUTPUT], out_format,
                          seen_switch && src_vlan <= MAX_VLAN ? items[F_SRC_VLAN] : NULL,
                          tag == L.dp_tag ? items[F_REASON] : NULL);
        if (keys == NULL) {
            for (int j = 0; j < FLOW_VIEW_FIELDS; j++)
                Py_DECREF(items[j]);
            return -1;
        }
    }
    PyObject *v = new_tuple(flow_view_type, items, FLOW_VIEW_FIELDS);
    if (v == NULL) {
        Py_XDECREF(keys);
        return -1;
    }
    if (keys != NULL) {
        int rc = set_keys(v, keys);
        Py_DECREF(keys);
        if (rc < 0) {
            Py_DECREF(v);
            return -1;
        }
    }
    *view = v;
    return 1;
}

/* ------------------------------------------------------------------ the walk */

static void
raise_truncated(PyObject *message, Py_ssize_t offset, PyObject *path)
{
    if (message != NULL && path != NULL) {
        PyObject *exc = PyObject_CallFunction(truncated_error, "OnO", message, offset, path);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
    }
    Py_XDECREF(message);
    Py_XDECREF(path);
}

static int
counter(PyObject *buf, size_t off, size_t stop, uint32_t tag, PyObject *counters, Py_ssize_t *bad)
{
    PyObject *args[4] = {buf, PyLong_FromSize_t(off), PyLong_FromSize_t(stop), u32(tag)};
    PyObject *view = NULL;
    if (args[1] != NULL && args[2] != NULL && args[3] != NULL)
        view = PyObject_Vectorcall(counter_sample, args, 4, NULL);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    Py_XDECREF(args[3]);
    if (view == NULL)
        return -1;
    int rc = 0;
    if (view == Py_None)
        (*bad)++;
    else
        rc = PyList_Append(counters, view);
    Py_DECREF(view);
    return rc;
}

/* The samples of b[off:end] after a datagram header whose fields are head (agent,
 * sub_agent_id, sequence, uptime: new references, stolen). */
static PyObject *
walk(PyObject *buf, size_t off, size_t end, unsigned long long count, PyObject **head)
{
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(buf);
    PyObject *flows = NULL, *counters = NULL;
    Py_ssize_t bad = 0;
    if (count > (end - off) / ELEMENT) {
        raise_truncated(
            PyUnicode_FromFormat("list of %llu elements runs past the end of its element",
                                 count),
            (Py_ssize_t)off, PyUnicode_FromString("datagram/samples"));
        goto error;
    }
    flows = PyList_New(0);
    counters = PyList_New(0);
    if (flows == NULL || counters == NULL)
        goto error;
    for (unsigned long long i = 0; i < count; i++) {
        if (end - off < ELEMENT) {
            raise_truncated(
                PyUnicode_FromString("element header runs past the end of its element"),
                (Py_ssize_t)off, PyUnicode_FromFormat("datagram/samples[%llu]", i));
            goto error;
        }
        uint32_t tag = rd32(b + off), length = rd32(b + off + 4);
        off += ELEMENT;
        if (length > end - off) {
            raise_truncated(
                PyUnicode_FromFormat("element length %lu runs past the end of its container",
                                     (unsigned long)length),
                (Py_ssize_t)off - 4, PyUnicode_FromFormat("datagram/samples[%llu]", i));
            goto error;
        }
        size_t stop = off + length;
        if (tag == L.flow_tag || tag == L.fx_tag || tag == L.dp_tag) {
            PyObject *view = NULL;
            int rc = flow_sample(b, off, stop, tag, &view);
            if (rc < 0)
                goto error;
            if (rc == 0) {
                bad++;
            } else {
                rc = PyList_Append(flows, view);
                Py_DECREF(view);
                if (rc < 0)
                    goto error;
            }
        } else if (tag == L.counters_tag || tag == L.counters_x_tag) {
            if (counter(buf, off, stop, tag, counters, &bad) < 0)
                goto error;
        } else {
            bad++;
        }
        off = stop;
    }
    PyObject *bad_count = PyLong_FromSsize_t(bad);
    if (bad_count == NULL)
        goto error;
    PyObject *items[DATAGRAM_FIELDS] = {head[0], head[1], head[2], head[3], flows, counters,
                                        bad_count};
    return new_tuple(datagram_type, items, DATAGRAM_FIELDS);

error:
    for (int j = 0; j < 4; j++)
        Py_DECREF(head[j]);
    Py_XDECREF(flows);
    Py_XDECREF(counters);
    return NULL;
}

static int
configured(void)
{
    if (flow_view_type != NULL && templates[0][0][0] != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "sflowlab.codec._walk: configure() first");
    return 0;
}

PyDoc_STRVAR(samples_doc,
"samples(buf, off, end, count, agent, sub_agent_id, sequence, uptime) -> CollectorDatagram\n\n"
"fast._samples_py in C: the count samples of bytes buf[off:end] after a datagram header.");

static PyObject *
walk_samples(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (!configured())
        return NULL;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "samples() takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *buf = args[0];
    if (!PyBytes_Check(buf)) {
        PyErr_SetString(PyExc_TypeError, "samples(): buf must be bytes");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    unsigned long long count = PyLong_AsUnsignedLongLong(args[3]);
    if (count == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (off < 0 || end < off || end > PyBytes_GET_SIZE(buf)) {
        PyErr_SetString(PyExc_ValueError, "samples(): need 0 <= off <= end <= len(buf)");
        return NULL;
    }
    PyObject *head[4] = {Py_NewRef(args[4]), Py_NewRef(args[5]), Py_NewRef(args[6]),
                         Py_NewRef(args[7])};
    return walk(buf, (size_t)off, (size_t)end, count, head);
}

PyDoc_STRVAR(usual_datagram_doc,
"usual_datagram(buf) -> CollectorDatagram | None\n\n"
"decode_for_collector's usual case in C: bytes buf of version 5 with an IPv4 agent, read\n"
"as fast._samples_py reads it after the header; None for any other header.");

static PyObject *
walk_usual_datagram(PyObject *module, PyObject *buf)
{
    (void)module;
    if (!configured())
        return NULL;
    if (!PyBytes_Check(buf)) {
        PyErr_SetString(PyExc_TypeError, "usual_datagram(): buf must be bytes");
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t size = PyBytes_GET_SIZE(buf);
    /* version 5, address type 1 (IPv4), the address at 8, then the layout's fields */
    if ((size_t)size < L.dg_size || rd32(b) != 5 || rd32(b + 4) != 1)
        Py_RETURN_NONE;
    PyObject *head[4] = {ip4_text(b + 8), u32(rd32(b + L.dg_sub_agent)),
                         u32(rd32(b + L.dg_sequence)), u32(rd32(b + L.dg_uptime))};
    for (int i = 0; i < 4; i++) {
        if (head[i] == NULL) {
            for (int j = 0; j < 4; j++)
                Py_XDECREF(head[j]);
            return NULL;
        }
    }
    return walk(buf, L.dg_size, (size_t)size, rd32(b + L.dg_count), head);
}

/* ------------------------------------------------------------------ configure */

static int
check_fields(PyObject *type, Py_ssize_t n, const char *what)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must be a tuple subclass", what);
        return -1;
    }
    PyObject *fields = PyObject_GetAttrString(type, "_fields");
    if (fields == NULL)
        return -1;
    Py_ssize_t size = PyObject_Length(fields);
    Py_DECREF(fields);
    if (size < 0)
        return -1;
    if (size != n) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must have %zd fields, not %zd", what,
                     n, size);
        return -1;
    }
    return 0;
}

static int
check_texts(PyObject *texts, Py_ssize_t n, const char *what)
{
    if (!PyTuple_CheckExact(texts) || PyTuple_GET_SIZE(texts) != n) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must be a tuple of %zd str", what, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(texts, i))) {
            PyErr_Format(PyExc_TypeError, "configure(): %s must be a tuple of %zd str", what, n);
            return -1;
        }
    }
    return 0;
}

/* L from the layout dict: every name present, an int, offsets inside their structure; on
 * an error L is left as it was. */
static int
set_layout(PyObject *layout)
{
    uint32_t values[LAYOUT_NAMES];
    for (size_t i = 0; i < LAYOUT_NAMES; i++) {
        PyObject *v = PyDict_GetItemString(layout, layout_names[i].name); /* borrowed */
        if (v == NULL || !PyLong_Check(v)) {
            PyErr_Format(PyExc_TypeError, "configure(): layout[%s] must be an int",
                         layout_names[i].name);
            return -1;
        }
        unsigned long n = PyLong_AsUnsignedLong(v);
        if (n == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        if (n > (layout_names[i].within == NULL ? ALL_ONES : MAX_LAYOUT)) {
            PyErr_Format(PyExc_ValueError, "configure(): layout[%s] = %lu is out of range",
                         layout_names[i].name, n);
            return -1;
        }
        values[i] = (uint32_t)n;
    }
    uint32_t saved[LAYOUT_NAMES];
    for (size_t i = 0; i < LAYOUT_NAMES; i++) {
        saved[i] = *layout_names[i].value;
        *layout_names[i].value = values[i];
    }
    for (size_t i = 0; i < LAYOUT_NAMES; i++) {
        const uint32_t *within = layout_names[i].within;
        if (within != NULL && within != layout_names[i].value
            && (uint64_t)*layout_names[i].value + layout_names[i].width > *within) {
            PyErr_Format(PyExc_ValueError, "configure(): layout[%s] lies outside its structure",
                         layout_names[i].name);
            goto invalid;
        }
    }
    if (L.dg_sub_agent < 12 || L.dg_sequence < 12 || L.dg_uptime < 12 || L.dg_count < 12
        || L.hdr_length + 4 != L.hdr_size) {
        PyErr_SetString(PyExc_ValueError, "configure(): the datagram fields must follow the "
                        "IPv4 address (12 bytes) and sampled_header's bytes its length word");
        goto invalid;
    }
    return 0;
invalid:
    for (size_t i = 0; i < LAYOUT_NAMES; i++)
        *layout_names[i].value = saved[i];
    return -1;
}

static void
clear_configuration(void)
{
    Py_CLEAR(flow_view_type);
    Py_CLEAR(datagram_type);
    Py_CLEAR(truncated_error);
    Py_CLEAR(counter_sample);
    Py_CLEAR(tcp_flags);
    Py_CLEAR(ip_tos);
    Py_CLEAR(drop_reasons);
    Py_CLEAR(output_keys);
    Py_CLEAR(internal_value);
}

PyDoc_STRVAR(configure_doc,
"configure(*, flow_view, datagram, truncated_error, counter_sample, tcp_flags, ip_tos,\n"
"          drop_reasons, output_keys, internal, layout) -> None\n\n"
"The Python objects samples() builds and calls: FlowSampleView, CollectorDatagram,\n"
"TruncatedError, _counter_sample, headers.TCP_FLAGS and IP_TOS, samples.DROP_REASONS,\n"
"fast._OUTPUT_KEYS and samples.INTERNAL; layout: fast._C_LAYOUT, the offsets and tags\n"
"read, by name (\"flow_sample.sampling_rate\"), from the codec's declarations.");

static PyObject *
walk_configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"flow_view", "datagram", "truncated_error", "counter_sample",
                             "tcp_flags", "ip_tos", "drop_reasons", "output_keys", "internal",
                             "layout", NULL};
    PyObject *fv = NULL, *dg = NULL, *te = NULL, *cs = NULL, *tf = NULL, *it = NULL;
    PyObject *dr = NULL, *ok = NULL, *in = NULL, *lo = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOOOO!O!O!O!:configure", kwlist, &fv,
                                     &dg, &te, &cs, &tf, &it, &PyDict_Type, &dr, &PyDict_Type,
                                     &ok, &PyLong_Type, &in, &PyDict_Type, &lo))
        return NULL;
    if (in == NULL || fv == NULL || dg == NULL || te == NULL || cs == NULL || tf == NULL
        || it == NULL || dr == NULL || ok == NULL || lo == NULL) {
        PyErr_SetString(PyExc_TypeError, "configure() takes exactly its 10 keyword arguments");
        return NULL;
    }
    if (check_fields(fv, FLOW_VIEW_FIELDS, "flow_view") < 0
        || check_fields(dg, DATAGRAM_FIELDS, "datagram") < 0
        || check_texts(tf, 512, "tcp_flags") < 0 || check_texts(it, 256, "ip_tos") < 0)
        return NULL;
    if (!PyExceptionClass_Check(te) || !PyCallable_Check(cs)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(): truncated_error must be an exception class and "
                        "counter_sample callable");
        return NULL;
    }
    unsigned long internal = PyLong_AsUnsignedLong(in);
    if (internal == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (internal > ALL_ONES) {
        PyErr_SetString(PyExc_ValueError, "configure(): internal must fit 32 bits");
        return NULL;
    }
    if (set_layout(lo) < 0)
        return NULL;
    clear_configuration();
    flow_view_type = (PyTypeObject *)Py_NewRef(fv);
    datagram_type = (PyTypeObject *)Py_NewRef(dg);
    truncated_error = Py_NewRef(te);
    counter_sample = Py_NewRef(cs);
    tcp_flags = Py_NewRef(tf);
    ip_tos = Py_NewRef(it);
    drop_reasons = Py_NewRef(dr);
    output_keys = Py_NewRef(ok);
    internal_value = Py_NewRef(in);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef walk_methods[] = {
    {"samples", (PyCFunction)(void (*)(void))walk_samples, METH_FASTCALL, samples_doc},
    {"usual_datagram", walk_usual_datagram, METH_O, usual_datagram_doc},
    {"configure", (PyCFunction)(void (*)(void))walk_configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

static void
walk_free(void *module)
{
    (void)module;
    clear_configuration();
    cache_clear(mac_cache);
    cache_clear(ip4_cache);
    for (int t = 0; t < 8; t++)
        Py_CLEAR(templates[t >> 2][(t >> 1) & 1][t & 1]);
    for (int k = 0; k < K_COUNT; k++)
        Py_CLEAR(names[k]);
    Py_CLEAR(keys_attr);
}

static struct PyModuleDef walk_module = {
    PyModuleDef_HEAD_INIT, "_walk",
    "The collector's sample walk in C (see sflowlab.codec.fast); optional accelerator.",
    -1, walk_methods, NULL, NULL, NULL, walk_free,
};

PyMODINIT_FUNC
PyInit__walk(void)
{
    if (names[0] == NULL) {
        for (int k = 0; k < K_COUNT; k++) {
            names[k] = PyUnicode_InternFromString(key_names[k]);
            if (names[k] == NULL)
                goto error;
        }
        keys_attr = PyUnicode_InternFromString("_keys");
        if (keys_attr == NULL || build_templates() < 0)
            goto error;
    }
    return PyModule_Create(&walk_module);
error:
    walk_free(NULL);
    return NULL;
}
