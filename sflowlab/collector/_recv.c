/* sflowlab.collector._recv: batch receive of UDP datagrams with Linux recvmmsg, the accelerator
 * of the shard workers' receive loop (shards._Receiver, which falls back to one recvfrom per
 * datagram when this is not built).
 *
 * recv_batch(fd, max_datagrams) -> [(data, (host, port)), ...]
 *   Releases the GIL and calls recvmmsg(MSG_WAITFORONE): blocks until one datagram is there
 *   (unless the socket is non-blocking: BlockingIOError), then takes what is queued, up to
 *   max_datagrams (1 to 1024). host is the address text as the socket module gives it
 *   (inet_ntop), for IPv6 too: always a 2-tuple (flowinfo and scope id left out).
 *   An empty list: the socket was shut down for reading (shutdown(SHUT_RD) wakes a blocked
 *   call with a zero-length "datagram" without a source), the caller's cue to stop.
 *   Each slot holds 65,536 bytes, more than any UDP payload; a datagram the kernel truncated
 *   all the same is left out and counted (truncated()), never returned cut short.
 *   EINTR: signal handlers run (their exception propagates), then the call is retried.
 *   Other errors: OSError with the errno (e.g. EBADF for a closed descriptor).
 *
 * The buffers (max_datagrams x 65,536 bytes and the message headers) are kept in a small pool
 * taken from and given back to with the GIL held, so threads receiving concurrently each have
 * their own while blocked. Source tuples are cached in a small direct-mapped table keyed by the
 * raw address and port (a hit costs a compare and a reference, no new str, int or tuple).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SLOT 65536      /* bytes per datagram: > 65,535 - 8, the largest UDP payload */
#define MAX_BATCH 1024
#define POOL 8          /* buffers kept for reuse (one per receiving thread, typically) */
#define CACHE 1024      /* source tuples cached (direct-mapped; a power of two) */

typedef struct {
    unsigned capacity; /* datagrams */
    struct mmsghdr *msgs;
    struct iovec *iovs;
    struct sockaddr_storage *names;
    char *data;        /* capacity x SLOT */
} Buffers;

static Buffers *pool[POOL]; /* guarded by the GIL */
static int pooled;
static unsigned long long truncated_count;

typedef struct {
    uint16_t family, port;     /* port in network order */
    unsigned char addr[16];    /* IPv4: first 4 bytes, rest zero */
} Key;

typedef struct {
    Key key;
    PyObject *source;          /* (host, port), or NULL: empty slot */
} Entry;

static Entry cache[CACHE];

static void buffers_free(Buffers *b) {
    if (b == NULL)
        return;
    free(b->msgs);
    free(b->iovs);
    free(b->names);
    free(b->data);
    free(b);
}

static Buffers *buffers_new(unsigned capacity) {
    Buffers *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->capacity = capacity;
    b->msgs = calloc(capacity, sizeof *b->msgs);
    b->iovs = calloc(capacity, sizeof *b->iovs);
    b->names = calloc(capacity, sizeof *b->names);
    b->data = malloc((size_t)capacity * SLOT);
    if (!b->msgs || !b->iovs || !b->names || !b->data) {
        buffers_free(b);
        return NULL;
    }
    for (unsigned i = 0; i < capacity; i++) {
        b->iovs[i].iov_base = b->data + (size_t)i * SLOT;
        b->iovs[i].iov_len = SLOT;
        b->msgs[i].msg_hdr.msg_iov = &b->iovs[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
        b->msgs[i].msg_hdr.msg_name = &b->names[i];
    }
    return b;
}

/* With the GIL held: buffers for at least n datagrams, from the pool when it has them. */
static Buffers *buffers_take(unsigned n) {
    if (pooled > 0) {
        Buffers *b = pool[--pooled];
        if (b->capacity >= n)
            return b;
        buffers_free(b);
    }
    return buffers_new(n);
}

static void buffers_give(Buffers *b) {
    if (pooled < POOL)
        pool[pooled++] = b;
    else
        buffers_free(b);
}

/* A new reference to the (host, port) of a source address; NULL with an exception set. */
static PyObject *source_of(const struct sockaddr_storage *ss) {
    Key key;
    memset(&key, 0, sizeof key);
    key.family = ss->ss_family;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        key.port = sin->sin_port;
        memcpy(key.addr, &sin->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        key.port = sin6->sin6_port;
        memcpy(key.addr, &sin6->sin6_addr, 16);
    } else {
        return Py_NewRef(Py_None); /* not an IP socket: no source to give */
    }
    uint32_t words[4], h = ((uint32_t)key.family << 16 | key.port) * 0x9E3779B1u;
    memcpy(words, key.addr, sizeof words);
    for (int i = 0; i < 4; i++)
        h = (h ^ words[i]) * 0x9E3779B1u;
    Entry *e = &cache[(h ^ h >> 16) & (CACHE - 1)];
    if (e->source != NULL && memcmp(&e->key, &key, sizeof key) == 0)
        return Py_NewRef(e->source);
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(key.family, key.addr, text, sizeof text) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *host = PyUnicode_DecodeASCII(text, (Py_ssize_t)strlen(text), NULL);
    PyObject *port = host ? PyLong_FromLong(ntohs(key.port)) : NULL;
    PyObject *source = port ? PyTuple_Pack(2, host, port) : NULL;
    Py_XDECREF(host);
    Py_XDECREF(port);
    if (source == NULL)
        return NULL;
    Py_XSETREF(e->source, Py_NewRef(source));
    e->key = key;
    return source;
}

static PyObject *recv_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(fd, max_datagrams) takes 2 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        errno = EBADF;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    long n = PyLong_AsLong(args[1]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 1 || n > MAX_BATCH) {
        PyErr_Format(PyExc_ValueError, "max_datagrams must be 1 to %d", MAX_BATCH);
        return NULL;
    }
    Buffers *b = buffers_take((unsigned)n);
    if (b == NULL)
        return PyErr_NoMemory();
    int got, err = 0;
    for (;;) {
        for (long i = 0; i < n; i++)
            b->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        Py_BEGIN_ALLOW_THREADS
        got = recvmmsg((int)fd, b->msgs, (unsigned)n, MSG_WAITFORONE, NULL);
        err = errno;
        Py_END_ALLOW_THREADS
        if (got >= 0)
            break;
        if (err != EINTR || PyErr_CheckSignals() < 0) {
            buffers_give(b);
            if (err == EINTR)
                return NULL; /* a signal handler raised */
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    /* The datagrams up to the first without a source (the shutdown mark), less truncated. */
    int end = 0, kept = 0;
    for (; end < got && b->msgs[end].msg_hdr.msg_namelen != 0; end++) {
        if (b->msgs[end].msg_hdr.msg_flags & MSG_TRUNC)
            truncated_count++;
        else
            kept++;
    }
    PyObject *list = PyList_New(kept);
    for (int i = 0, k = 0; list != NULL && i < end; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        if (h->msg_flags & MSG_TRUNC)
            continue;
        PyObject *data = PyBytes_FromStringAndSize(b->data + (size_t)i * SLOT,
                                                   (Py_ssize_t)b->msgs[i].msg_len);
        PyObject *source = data ? source_of(h->msg_name) : NULL;
        PyObject *item = source ? PyTuple_New(2) : NULL;
        if (item == NULL) {
            Py_XDECREF(data);
            Py_XDECREF(source);
            Py_CLEAR(list);
            break;
        }
        PyTuple_SET_ITEM(item, 0, data);
        PyTuple_SET_ITEM(item, 1, source);
        PyList_SET_ITEM(list, k++, item);
    }
    buffers_give(b);
    return list;
}

static PyObject *truncated(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLongLong(truncated_count);
}

static PyMethodDef recv_methods[] = {
    {"recv_batch", (PyCFunction)(void (*)(void))recv_batch, METH_FASTCALL,
     "recv_batch(fd, max_datagrams) -> [(data, (host, port)), ...]: up to max_datagrams\n"
     "datagrams with recvmmsg (blocks for the first; [] once the socket is shut down)."},
    {"truncated", truncated, METH_NOARGS,
     "Datagrams left out because the kernel truncated them (none expected: 64 KiB slots)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef recv_module = {
    PyModuleDef_HEAD_INIT, "_recv",
    "Batch receive of UDP datagrams with recvmmsg (see sflowlab.collector.shards).", -1,
    recv_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__recv(void) {
    PyObject *m = PyModule_Create(&recv_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_BATCH", MAX_BATCH) < 0
        || PyModule_AddIntConstant(m, "SLOT", SLOT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
