/* sflowlab.collector._rates: the rate-flow ingest loop in C (optional accelerator).
 *
 * RateIngester(keys, fs, base, test, tables, entry_type, inv_t, prune, prune_slack) is, once
 * per flow definition, what flows._rate_ingester generates in Python for a "rate:" flow
 * without logging; calling it with (rows, now, max_keys) leaves exactly the state the
 * generated loop leaves: the same tables and entries, the same floats bit for bit (the same
 * operations in the same order, libm exp as math.exp uses, no fused multiply-add), the same
 * calls of the filter, the key getters and prune, the same exceptions at the same points.
 *
 * keys: a tuple with, per flow key, either a str (a plain key name: keys.get(name)) or a
 * callable getter(keys). base: "bytes", "frames" or a numeric key name. test: a callable or
 * None. tables: the flow's dict (agent, data source) -> {flow key: entry}. entry_type:
 * flows._Entry; a new entry is made here as entry_type(now) would make it: its slots are
 * copied from a prototype built once by entry_type itself, `last` set to now.
 *
 * The usual values (exact float now, entry.a and entry.last, exact int or float quantities,
 * exact dict keys and tables, rows a list of 5-tuples) take the C path; anything else goes
 * through the generic object protocol exactly as the Python statements do.
 *
 * sample_rows(agent, samples, now, key_names, key_sets, with_rows, needs_agent, data_source)
 * is flows._py_sample_rows in C: one datagram's rows for the loops above, the same objects
 * built from the same calls (sample.keys() and the attributes), the same key sets noted.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* Python rounds every product and sum: a fused multiply-add would not. GCC contracts across
 * statements where the target has FMA (and ignores the STDC pragma): round through memory. */
#if defined(__FP_FAST_FMA) && !defined(__clang__)
static inline double rounded(double x) { volatile double v = x; return v; }
#else
#define rounded(x) (x)
#endif

enum { S_A, S_B, S_LAST, S_LOG_START, S_SEEN, S_TOTAL, N_SLOTS };
static const char *const slot_names[N_SLOTS] = {"a", "b", "last", "log_start", "seen", "total"};

enum { Q_BYTES, Q_FRAMES, Q_KEY };

#ifndef Py_T_OBJECT_EX  /* before 3.12: structmember.h's names */
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
#define STACK_KEYS 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *keys;         /* tuple: str key names and getters */
    PyObject *fs;           /* str */
    PyObject *base;         /* str */
    int quantity;           /* Q_* from base */
    PyObject *test;         /* callable or NULL */
    PyObject *tables;       /* dict */
    PyTypeObject *entry_type;
    Py_ssize_t off[N_SLOTS];
    PyObject *proto[N_SLOTS]; /* a new entry's slots (proto[S_LAST] unused: now) */
    PyObject *inv_t;        /* float */
    double inv_t_d;
    PyObject *prune;
    PyObject *prune_slack;
    PyObject *exp;          /* math.exp, for the generic path and to raise its errors */
} Ingester;

/* Per call state. */
typedef struct {
    PyObject *now;
    double now_d;
    int now_float;
    PyObject *max_keys;
    PyObject *limit;        /* max_keys * prune_slack */
    double limit_d;
    int limit_float;
    PyObject *last_src;     /* strong references, like the Python locals */
    PyObject *table;
    PyObject **parts;
} Call;

static PyObject *str_get, *str_empty, *int_zero;
static PyObject *attr_names[N_SLOTS];
static PyObject *str_keys, *str_stack, *str_agent, *str_source_id_index, *str_source_id_type,
    *str_sampling_rate, *str_discarded, *str_frame_length;

/* ------------------------------------------------------------------ small helpers */

/* mapping.get(name): a new reference (None when missing) or NULL on error. */
static PyObject *
mapping_get(PyObject *mapping, PyObject *name)
{
    if (PyDict_CheckExact(mapping)) {
        PyObject *v = PyDict_GetItemWithError(mapping, name);
        if (v == NULL) {
            if (PyErr_Occurred())
                return NULL;
            v = Py_None;
        }
        Py_INCREF(v);
        return v;
    }
    return PyObject_CallMethodOneArg(mapping, str_get, name);
}

/* str(v) as a new reference; the decimal text of a small non-negative exact int (a port,
 * an ifIndex, a protocol) made once and kept, as flow keys and data source names repeat. */
#define SMALL_TEXTS 65536
static PyObject *small_texts[SMALL_TEXTS];

static PyObject *
text_of(PyObject *v)
{
    if (PyLong_CheckExact(v)) {
        int overflow;
        long n = PyLong_AsLongAndOverflow(v, &overflow);
        if (!overflow && n >= 0 && n < SMALL_TEXTS) {
            if (small_texts[n] == NULL && (small_texts[n] = PyObject_Str(v)) == NULL)
                return NULL;
            return Py_NewRef(small_texts[n]);
        }
    }
    return PyObject_Str(v);
}

/* 1 and *out set for an exact float or int (as float_mul converts it), 0 for anything else,
 * -1 on error (an int too large for a double: OverflowError, as Python raises). */
static int
as_double(PyObject *q, double *out)
{
    if (PyFloat_CheckExact(q)) {
        *out = PyFloat_AS_DOUBLE(q);
        return 1;
    }
    if (PyLong_CheckExact(q)) {
        double d = PyLong_AsDouble(q);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        *out = d;
        return 1;
    }
    return 0;
}

/* math.exp(x) as a double; where math.exp raises, it is called to raise the same. */
static int
checked_exp(Ingester *self, double x, double *out)
{
    errno = 0;
    double r = exp(x);
    if ((isnan(r) && !isnan(x)) || (isinf(r) && isfinite(x))
            || (isfinite(r) && errno && !(errno == ERANGE && fabs(r) < 1.5))) {
        PyObject *arg = PyFloat_FromDouble(x);
        if (arg == NULL)
            return -1;
        PyObject *res = PyObject_CallOneArg(self->exp, arg);
        Py_DECREF(arg);
        if (res == NULL)
            return -1;
        r = PyFloat_AsDouble(res);
        Py_DECREF(res);
        if (r == -1.0 && PyErr_Occurred())
            return -1;
    }
    *out = r;
    return 0;
}

/* parts[0] + fs + parts[1] + ... as one new str (parts: str, possibly subclasses). */
static PyObject *
join(PyObject *fs, PyObject **parts, Py_ssize_t n)
{
    Py_ssize_t fs_len = PyUnicode_GET_LENGTH(fs), len = fs_len * (n - 1), i;
    Py_UCS4 maxchar = PyUnicode_MAX_CHAR_VALUE(fs);
    for (i = 0; i < n; i++) {
        Py_ssize_t plen = PyUnicode_GET_LENGTH(parts[i]);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(parts[i]);
        if (plen > PY_SSIZE_T_MAX - len)
            return PyErr_NoMemory();
        len += plen;
        if (m > maxchar)
            maxchar = m;
    }
    PyObject *out = PyUnicode_New(len, maxchar);
    if (out == NULL)
        return NULL;
    Py_ssize_t at = 0;
    if (maxchar < 256) {  /* every piece is one byte per character: copy bytes */
        Py_UCS1 *data = PyUnicode_1BYTE_DATA(out);
        for (i = 0; i < n; i++) {
            if (i) {
                memcpy(data + at, PyUnicode_1BYTE_DATA(fs), fs_len);
                at += fs_len;
            }
            Py_ssize_t plen = PyUnicode_GET_LENGTH(parts[i]);
            memcpy(data + at, PyUnicode_DATA(parts[i]), plen);
            at += plen;
        }
        return out;
    }
    for (i = 0; i < n; i++) {
        if (i) {
            if (PyUnicode_CopyCharacters(out, at, fs, 0, fs_len) < 0)
                goto error;
            at += fs_len;
        }
        Py_ssize_t plen = PyUnicode_GET_LENGTH(parts[i]);
        if (PyUnicode_CopyCharacters(out, at, parts[i], 0, plen) < 0)
            goto error;
        at += plen;
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* for src, keys, _, nbytes, rate in rows: the unpacking of one row (borrowed items of `row`,
 * or of *hold, a new tuple, when the row is some other iterable), as Python does it. */
static int
unpack_row(PyObject *row, PyObject **items, PyObject **hold)
{
    if ((PyTuple_CheckExact(row) && PyTuple_GET_SIZE(row) == 5)) {
        memcpy(items, &PyTuple_GET_ITEM(row, 0), 5 * sizeof(PyObject *));
        return 0;
    }
    if (PyList_CheckExact(row) && PyList_GET_SIZE(row) == 5) {
        *hold = PyList_AsTuple(row);
    }
    else {
        PyObject *it = PyObject_GetIter(row), *got[5], *extra;
        int i;
        if (it == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError) && Py_TYPE(row)->tp_iter == NULL
                    && !PySequence_Check(row)) {
                PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object",
                             Py_TYPE(row)->tp_name);
            }
            return -1;
        }
        for (i = 0; i < 5; i++) {
            got[i] = PyIter_Next(it);
            if (got[i] == NULL) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError,
                                 "not enough values to unpack (expected 5, got %d)", i);
                goto fail;
            }
        }
        extra = PyIter_Next(it);
        if (extra != NULL || PyErr_Occurred()) {
            if (extra != NULL) {
                Py_DECREF(extra);
                PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 5)");
            }
            goto fail;
        }
        Py_DECREF(it);
        *hold = PyTuple_New(5);
        if (*hold == NULL) {
            for (i = 0; i < 5; i++)
                Py_DECREF(got[i]);
            return -1;
        }
        for (i = 0; i < 5; i++)
            PyTuple_SET_ITEM(*hold, i, got[i]);
        goto done;
    fail:
        while (--i >= 0)
            Py_DECREF(got[i]);
        Py_DECREF(it);
        return -1;
    }
done:
    if (*hold == NULL)
        return -1;
    memcpy(items, &PyTuple_GET_ITEM(*hold, 0), 5 * sizeof(PyObject *));
    return 0;
}

/* ------------------------------------------------------------------ entries */

/* entry_type(now), made from the prototype's slots. */
static PyObject *
new_entry(Ingester *self, PyObject *now)
{
    PyObject *entry = self->entry_type->tp_alloc(self->entry_type, 0);
    if (entry == NULL)
        return NULL;
    for (int s = 0; s < N_SLOTS; s++) {
        PyObject *v = s == S_LAST ? now : self->proto[s];
        Py_INCREF(v);
        SLOT(entry, self->off[s]) = v;
    }
    /* Not tracked by the cyclic GC: an entry of a rate flow holds numbers and None only, so it
     * can never be part of a cycle, and refcounting frees it when its table drops it. A busy
     * collector keeps a million of them; tracked, each full collection walked them all
     * (seconds-long pauses in which the socket buffers overflowed). */
    if (PyType_IS_GC(self->entry_type))
        PyObject_GC_UnTrack(entry);
    return entry;
}

/* entry.<slot> = value (a new reference, stolen), entry being an entry_type. */
static int
set_slot(Ingester *self, PyObject *entry, int s, PyObject *value)
{
    if (value == NULL)
        return -1;
    Py_XSETREF(SLOT(entry, self->off[s]), value);
    return 0;
}

/* The row's quantity: nbytes, rate or x * rate (a new reference). */
static PyObject *
quantity(Ingester *self, PyObject *nbytes, PyObject *rate, PyObject *x)
{
    switch (self->quantity) {
    case Q_BYTES:
        Py_INCREF(nbytes);
        return nbytes;
    case Q_FRAMES:
        Py_INCREF(rate);
        return rate;
    default:
        return PyNumber_Multiply(x, rate);
    }
}

/* quantity * inv_t as a new reference. */
static PyObject *
scaled(Ingester *self, PyObject *q)
{
    double d;
    int fast = as_double(q, &d);
    if (fast < 0)
        return NULL;
    if (fast)
        return PyFloat_FromDouble(d * self->inv_t_d);
    return PyNumber_Multiply(q, self->inv_t);
}

/* The generic update, attribute by attribute as the Python statements run:
 *     dt = now - entry.last
 *     if dt > 0:
 *         entry.a = entry.a * exp(-dt * inv_t) + q * inv_t
 *         entry.last = now
 *     else:
 *         entry.a += q * inv_t                                                            */
static int
update_generic(Ingester *self, PyObject *entry, PyObject *now, PyObject *nbytes,
               PyObject *rate, PyObject *x)
{
    PyObject *last, *dt, *a = NULL, *t = NULL, *q = NULL, *p = NULL, *r = NULL;
    int positive, ret = -1;

    last = PyObject_GetAttr(entry, attr_names[S_LAST]);
    if (last == NULL)
        return -1;
    dt = PyNumber_Subtract(now, last);
    Py_DECREF(last);
    if (dt == NULL)
        return -1;
    t = PyObject_RichCompare(dt, int_zero, Py_GT);
    if (t == NULL)
        goto done;
    positive = PyObject_IsTrue(t);
    Py_CLEAR(t);
    if (positive < 0)
        goto done;
    a = PyObject_GetAttr(entry, attr_names[S_A]);
    if (a == NULL)
        goto done;
    if (positive) {
        PyObject *neg = PyNumber_Negative(dt), *arg, *e;
        if (neg == NULL)
            goto done;
        arg = PyNumber_Multiply(neg, self->inv_t);
        Py_DECREF(neg);
        if (arg == NULL)
            goto done;
        e = PyObject_CallOneArg(self->exp, arg);
        Py_DECREF(arg);
        if (e == NULL)
            goto done;
        t = PyNumber_Multiply(a, e);
        Py_DECREF(e);
        if (t == NULL)
            goto done;
    }
    q = quantity(self, nbytes, rate, x);
    if (q == NULL)
        goto done;
    p = PyNumber_Multiply(q, self->inv_t);
    if (p == NULL)
        goto done;
    r = positive ? PyNumber_Add(t, p) : PyNumber_InPlaceAdd(a, p);
    if (r == NULL)
        goto done;
    if (PyObject_SetAttr(entry, attr_names[S_A], r) < 0)
        goto done;
    if (positive && PyObject_SetAttr(entry, attr_names[S_LAST], now) < 0)
        goto done;
    ret = 0;
done:
    Py_DECREF(dt);
    Py_XDECREF(a);
    Py_XDECREF(t);
    Py_XDECREF(q);
    Py_XDECREF(p);
    Py_XDECREF(r);
    return ret;
}

/* The update of an existing entry; the C path when now, entry.last and entry.a are floats. */
static int
update(Ingester *self, Call *c, PyObject *entry, PyObject *nbytes, PyObject *rate,
       PyObject *x)
{
    PyObject *last, *a, *q, *value;
    double dt, a_d, q_d, t_d;
    int fast;

    if (!c->now_float || !Py_IS_TYPE(entry, self->entry_type))
        return update_generic(self, entry, c->now, nbytes, rate, x);
    last = SLOT(entry, self->off[S_LAST]);
    a = SLOT(entry, self->off[S_A]);
    if (last == NULL || a == NULL || !PyFloat_CheckExact(last) || !PyFloat_CheckExact(a))
        return update_generic(self, entry, c->now, nbytes, rate, x);
    dt = c->now_d - PyFloat_AS_DOUBLE(last);
    a_d = PyFloat_AS_DOUBLE(a);
    if (dt > 0) {
        double e;
        if (checked_exp(self, -dt * self->inv_t_d, &e) < 0)
            return -1;
        t_d = rounded(a_d * e);
    }
    else {
        t_d = a_d;
    }
    q = quantity(self, nbytes, rate, x);
    if (q == NULL)
        return -1;
    fast = as_double(q, &q_d);
    if (fast > 0) {
        value = PyFloat_FromDouble(t_d + rounded(q_d * self->inv_t_d));
    }
    else if (fast == 0) {  /* an unusual quantity: float t_d + q * inv_t, as objects */
        PyObject *p = PyNumber_Multiply(q, self->inv_t), *t;
        value = NULL;
        if (p != NULL && (t = PyFloat_FromDouble(t_d)) != NULL) {
            value = dt > 0 ? PyNumber_Add(t, p) : PyNumber_InPlaceAdd(t, p);
            Py_DECREF(t);
        }
        Py_XDECREF(p);
    }
    else {
        value = NULL;
    }
    Py_DECREF(q);
    if (set_slot(self, entry, S_A, value) < 0)
        return -1;
    if (dt > 0) {
        Py_INCREF(c->now);
        return set_slot(self, entry, S_LAST, c->now);
    }
    return 0;
}

/* ------------------------------------------------------------------ one row */

static int
ingest_row(Ingester *self, Call *c, PyObject *src, PyObject *keys, PyObject *nbytes,
           PyObject *rate)
{
    PyObject **parts = c->parts, *x = NULL, *flow_key = NULL, *entry = NULL, *table;
    Py_ssize_t nkeys = PyTuple_GET_SIZE(self->keys), n = 0, i;
    int ret = -1;

    if (self->test != NULL) {
        PyObject *r = PyObject_Vectorcall(self->test, &keys, 1, NULL);
        if (r == NULL)
            return -1;
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok <= 0)
            return ok;
    }
    for (i = 0; i < nkeys; i++) {
        PyObject *k = PyTuple_GET_ITEM(self->keys, i), *v;
        v = PyUnicode_CheckExact(k) ? mapping_get(keys, k) : PyObject_Vectorcall(k, &keys, 1, NULL);
        if (v == NULL)
            goto done;
        if (v == Py_None) {
            Py_DECREF(v);
            ret = 0;
            goto done;
        }
        if (!PyUnicode_CheckExact(v)) {
            Py_SETREF(v, text_of(v));
            if (v == NULL)
                goto done;
        }
        parts[n++] = v;
    }
    if (self->quantity == Q_KEY) {
        x = mapping_get(keys, self->base);
        if (x == NULL)
            goto done;
        if (x == Py_None || Py_IS_TYPE(x, &PyUnicode_Type)) {
            ret = 0;
            goto done;
        }
    }
    if (n == 0) {
        flow_key = str_empty;
        Py_INCREF(flow_key);
    }
    else if (n == 1) {
        flow_key = parts[0];
        Py_INCREF(flow_key);
    }
    else if ((flow_key = join(self->fs, parts, n)) == NULL) {
        goto done;
    }

    if (src != c->last_src) {  /* the table of this (agent, data source) */
        Py_INCREF(src);
        Py_XSETREF(c->last_src, src);
        table = PyDict_GetItemWithError(self->tables, src);
        if (table == NULL && PyErr_Occurred())
            goto done;
        if (table == NULL || table == Py_None) {
            table = PyDict_New();
            if (table == NULL)
                goto done;
            if (PyDict_SetItem(self->tables, src, table) < 0) {
                Py_DECREF(table);
                goto done;
            }
        }
        else {
            Py_INCREF(table);
        }
        Py_XSETREF(c->table, table);
    }
    table = c->table;

    entry = mapping_get(table, flow_key);
    if (entry == NULL)
        goto done;
    if (entry != Py_None) {
        ret = update(self, c, entry, nbytes, rate, x);
        goto done;
    }
    /* a new entry: entry = table[flow_key] = Entry(now); entry.a = q * inv_t; prune */
    Py_SETREF(entry, new_entry(self, c->now));
    if (entry == NULL || PyObject_SetItem(table, flow_key, entry) < 0)
        goto done;
    {
        PyObject *q = quantity(self, nbytes, rate, x), *value;
        if (q == NULL)
            goto done;
        value = scaled(self, q);
        Py_DECREF(q);
        if (set_slot(self, entry, S_A, value) < 0)
            goto done;
    }
    {
        Py_ssize_t size = PyDict_CheckExact(table) ? PyDict_GET_SIZE(table) : PyObject_Size(table);
        int over;
        if (size < 0)
            goto done;
        if (c->limit_float) {
            over = (double)size > c->limit_d;  /* exact: a size is far below 2**53 */
        }
        else {
            PyObject *s = PyLong_FromSsize_t(size);
            if (s == NULL)
                goto done;
            over = PyObject_RichCompareBool(s, c->limit, Py_GT);
            Py_DECREF(s);
            if (over < 0)
                goto done;
        }
        if (over) {  /* prune(src, table, now, max_keys, [], int): not logged, no records */
            PyObject *args[6], *res;
            args[0] = src;
            args[1] = table;
            args[2] = c->now;
            args[3] = c->max_keys;
            args[4] = PyList_New(0);
            args[5] = (PyObject *)&PyLong_Type;
            if (args[4] == NULL)
                goto done;
            res = PyObject_Vectorcall(self->prune, args, 6, NULL);
            Py_DECREF(args[4]);
            if (res == NULL)
                goto done;
            Py_DECREF(res);
        }
    }
    ret = 0;
done:
    for (i = 0; i < n; i++)
        Py_DECREF(parts[i]);
    Py_XDECREF(x);
    Py_XDECREF(flow_key);
    Py_XDECREF(entry);
    return ret;
}

/* ------------------------------------------------------------------ the call */

static PyObject *
ingest(Ingester *self, PyObject *rows, PyObject *now, PyObject *max_keys)
{
    PyObject *stack_parts[STACK_KEYS], *it = NULL, *row = NULL, *result = NULL;
    Py_ssize_t nkeys = PyTuple_GET_SIZE(self->keys), i = 0;
    Call c = {now, 0.0, PyFloat_CheckExact(now), max_keys, NULL, 0.0, 0, NULL, NULL, stack_parts};

    if (c.now_float)
        c.now_d = PyFloat_AS_DOUBLE(now);
    c.limit = PyNumber_Multiply(max_keys, self->prune_slack);
    if (c.limit == NULL)
        return NULL;
    if (PyFloat_CheckExact(c.limit)) {
        c.limit_float = 1;
        c.limit_d = PyFloat_AS_DOUBLE(c.limit);
    }
    if (nkeys > STACK_KEYS) {
        c.parts = PyMem_New(PyObject *, nkeys);
        if (c.parts == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (!PyList_CheckExact(rows)) {
        it = PyObject_GetIter(rows);
        if (it == NULL)
            goto done;
    }
    for (;;) {
        PyObject *items[5], *hold = NULL;
        int r;
        if (it == NULL) {
            if (i >= PyList_GET_SIZE(rows))
                break;
            row = PyList_GET_ITEM(rows, i++);
            Py_INCREF(row);
        }
        else if ((row = PyIter_Next(it)) == NULL) {
            if (PyErr_Occurred())
                goto done;
            break;
        }
        if (unpack_row(row, items, &hold) < 0)
            goto done;
        r = ingest_row(self, &c, items[0], items[1], items[3], items[4]);
        Py_XDECREF(hold);
        Py_CLEAR(row);
        if (r < 0)
            goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(row);
    Py_XDECREF(it);
    Py_XDECREF(c.limit);
    Py_XDECREF(c.last_src);
    Py_XDECREF(c.table);
    if (c.parts != stack_parts)
        PyMem_Free(c.parts);
    return result;
}

static PyObject *
ingester_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    static const char *const names[3] = {"rows", "now", "max_keys"};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw, i, j;
    PyObject *got[3] = {NULL, NULL, NULL};

    nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "ingest() takes 3 positional arguments but %zd were given",
                     nargs);
        return NULL;
    }
    for (i = 0; i < nargs; i++)
        got[i] = args[i];
    for (j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        for (i = 0; i < 3; i++) {
            if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0)
                break;
        }
        if (i == 3) {
            PyErr_Format(PyExc_TypeError, "ingest() got an unexpected keyword argument '%U'",
                         name);
            return NULL;
        }
        if (got[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "ingest() got multiple values for argument '%s'",
                         names[i]);
            return NULL;
        }
        got[i] = args[nargs + j];
    }
    for (i = 0; i < 3; i++) {
        if (got[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "ingest() missing required argument '%s'", names[i]);
            return NULL;
        }
    }
    if (((Ingester *)op)->keys == NULL) {  /* cleared by the cyclic GC */
        PyErr_SetString(PyExc_RuntimeError, "RateIngester was cleared");
        return NULL;
    }
    return ingest((Ingester *)op, got[0], got[1], got[2]);
}

/* ------------------------------------------------------------------ construction */

/* The slots' offsets, and the prototype entry_type(now) with a fresh `now`: only its `last`
 * slot may hold now, every other slot must hold an immutable value (shared by new entries). */
static int
learn_entry(Ingester *self, PyTypeObject *type)
{
    PyObject *now = NULL, *proto = NULL;
    int s, ret = -1;

    if (type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "entry_type must not define __new__");
        return -1;
    }
    for (s = 0; s < N_SLOTS; s++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)type, slot_names[s]);
        if (d == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
        }
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)d)->d_member->type != Py_T_OBJECT_EX
                || (((PyMemberDescrObject *)d)->d_member->flags & Py_READONLY)
                || ((PyDescrObject *)d)->d_type != type) {
            PyErr_Format(PyExc_TypeError, "entry_type.%s must be a writable slot of its own",
                         slot_names[s]);
            Py_XDECREF(d);
            return -1;
        }
        self->off[s] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    Py_ssize_t members = 0;
    for (PyMemberDef *m = type->tp_members; m != NULL && m->name != NULL; m++)
        members++;
    if (members != N_SLOTS) {
        PyErr_SetString(PyExc_TypeError, "entry_type must have exactly the slots a, b, last,"
                        " log_start, seen and total");
        return -1;
    }
    now = PyFloat_FromDouble(0.0);  /* a fresh object: found by identity */
    if (now == NULL)
        return -1;
    proto = PyObject_CallOneArg((PyObject *)type, now);
    if (proto == NULL)
        goto done;
    if (!Py_IS_TYPE(proto, type)) {
        PyErr_SetString(PyExc_TypeError, "entry_type(now) must make an entry_type");
        goto done;
    }
    for (s = 0; s < N_SLOTS; s++) {
        PyObject *v = SLOT(proto, self->off[s]);
        if (s == S_LAST ? v != now : (v == NULL || v == now || !(
                v == Py_None || PyFloat_CheckExact(v) || PyLong_CheckExact(v)))) {
            PyErr_Format(PyExc_TypeError, "entry_type(now) sets %s in a way the accelerator"
                         " does not reproduce", slot_names[s]);
            goto done;
        }
        if (s != S_LAST) {
            Py_INCREF(v);
            self->proto[s] = v;
        }
    }
    ret = 0;
done:
    Py_XDECREF(proto);
    Py_DECREF(now);
    return ret;
}

static PyObject *
ingester_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keys", "fs", "base", "test", "tables", "entry_type", "inv_t",
                             "prune", "prune_slack", NULL};
    PyObject *keys, *fs, *base, *test, *tables, *entry_type, *inv_t, *prune, *prune_slack, *math;
    Ingester *self;
    Py_ssize_t i;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!OO!O!O!OO:RateIngester", kwlist,
                                     &PyTuple_Type, &keys, &PyUnicode_Type, &fs,
                                     &PyUnicode_Type, &base, &test, &PyDict_Type, &tables,
                                     &PyType_Type, &entry_type, &PyFloat_Type, &inv_t,
                                     &prune, &prune_slack))
        return NULL;
    if (!PyTuple_CheckExact(keys) || !PyUnicode_CheckExact(fs) || !PyUnicode_CheckExact(base)
            || !PyDict_CheckExact(tables) || !PyFloat_CheckExact(inv_t)) {
        PyErr_SetString(PyExc_TypeError, "RateIngester: keys must be a tuple, fs and base str,"
                        " tables a dict and inv_t a float (not subclasses)");
        return NULL;
    }
    for (i = 0; i < PyTuple_GET_SIZE(keys); i++) {
        PyObject *k = PyTuple_GET_ITEM(keys, i);
        if (!PyUnicode_CheckExact(k) && !PyCallable_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "RateIngester: each key must be a key name (str)"
                            " or a getter (callable)");
            return NULL;
        }
    }
    if ((test != Py_None && !PyCallable_Check(test)) || !PyCallable_Check(prune)) {
        PyErr_SetString(PyExc_TypeError, "RateIngester: test must be callable or None, and"
                        " prune callable");
        return NULL;
    }
    self = (Ingester *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = ingester_vectorcall;
    if (learn_entry(self, (PyTypeObject *)entry_type) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    math = PyImport_ImportModule("math");
    if (math == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->exp = PyObject_GetAttrString(math, "exp");
    Py_DECREF(math);
    if (self->exp == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->quantity = PyUnicode_CompareWithASCIIString(base, "bytes") == 0 ? Q_BYTES
        : PyUnicode_CompareWithASCIIString(base, "frames") == 0 ? Q_FRAMES : Q_KEY;
    Py_INCREF(keys);
    self->keys = keys;
    Py_INCREF(fs);
    self->fs = fs;
    Py_INCREF(base);
    self->base = base;
    self->test = test == Py_None ? NULL : test;
    Py_XINCREF(self->test);
    Py_INCREF(tables);
    self->tables = tables;
    Py_INCREF(entry_type);
    self->entry_type = (PyTypeObject *)entry_type;
    Py_INCREF(inv_t);
    self->inv_t = inv_t;
    self->inv_t_d = PyFloat_AS_DOUBLE(inv_t);
    Py_INCREF(prune);
    self->prune = prune;
    Py_INCREF(prune_slack);
    self->prune_slack = prune_slack;
    return (PyObject *)self;
}

static int
ingester_traverse(Ingester *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keys);
    Py_VISIT(self->fs);
    Py_VISIT(self->base);
    Py_VISIT(self->test);
    Py_VISIT(self->tables);
    Py_VISIT(self->entry_type);
    for (int s = 0; s < N_SLOTS; s++)
        Py_VISIT(self->proto[s]);
    Py_VISIT(self->inv_t);
    Py_VISIT(self->prune);
    Py_VISIT(self->prune_slack);
    Py_VISIT(self->exp);
    return 0;
}

static int
ingester_clear(Ingester *self)
{
    Py_CLEAR(self->keys);
    Py_CLEAR(self->fs);
    Py_CLEAR(self->base);
    Py_CLEAR(self->test);
    Py_CLEAR(self->tables);
    Py_CLEAR(self->entry_type);
    for (int s = 0; s < N_SLOTS; s++)
        Py_CLEAR(self->proto[s]);
    Py_CLEAR(self->inv_t);
    Py_CLEAR(self->prune);
    Py_CLEAR(self->prune_slack);
    Py_CLEAR(self->exp);
    return 0;
}

static void
ingester_dealloc(Ingester *self)
{
    PyObject_GC_UnTrack(self);
    ingester_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(ingester_doc,
"RateIngester(keys, fs, base, test, tables, entry_type, inv_t, prune, prune_slack)\n--\n\n"
"A rate flow's ingest loop: call it with (rows, now, max_keys), as the function\n"
"flows._rate_ingester generates (the same state, bit for bit).");

static PyTypeObject IngesterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sflowlab.collector._rates.RateIngester",
    .tp_basicsize = sizeof(Ingester),
    .tp_dealloc = (destructor)ingester_dealloc,
    .tp_vectorcall_offset = offsetof(Ingester, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = ingester_doc,
    .tp_traverse = (traverseproc)ingester_traverse,
    .tp_clear = (inquiry)ingester_clear,
    .tp_new = ingester_new,
};

/* ------------------------------------------------------------------ rows of a datagram */

/* (*keys, "agent"): the key names of a key set. */
static PyObject *
key_names_of(PyObject *keys)
{
    PyObject *names = PySequence_List(keys), *out;
    if (names == NULL)
        return NULL;
    if (PyList_Append(names, str_agent) < 0) {
        Py_DECREF(names);
        return NULL;
    }
    out = PyList_AsTuple(names);
    Py_DECREF(names);
    return out;
}

/* {**keys, "agent": agent} */
static PyObject *
with_agent(PyObject *keys, PyObject *agent)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    if (PyDict_Update(out, keys) < 0) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError))
            PyErr_Format(PyExc_TypeError, "'%.200s' object is not a mapping",
                         Py_TYPE(keys)->tp_name);
        Py_DECREF(out);
        return NULL;
    }
    if (PyDict_SetItem(out, str_agent, agent) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* The flow sample class set_view(cls) named (a NamedTuple that keeps tuple's item access,
 * the flow keys cached in its instance dict as _keys): samples of exactly that class have
 * their fields read by position and their cached keys read directly, the values the
 * attribute and keys() calls give. Other samples take those calls. */
enum { F_TYPE, F_INDEX, F_RATE, F_DISCARDED, F_LENGTH, N_FIELDS };
static PyTypeObject *view_type;
static Py_ssize_t view_at[N_FIELDS];
static PyObject *str__keys;

static PyObject *
field(PyObject *sample, int f, PyObject *name)
{
    if (Py_TYPE(sample) == view_type && view_at[f] < PyTuple_GET_SIZE(sample))
        return Py_NewRef(PyTuple_GET_ITEM(sample, view_at[f]));
    return PyObject_GetAttr(sample, name);
}

static PyObject *
keys_of(PyObject *sample)
{
#if PY_VERSION_HEX < 0x030D0000
    if (Py_TYPE(sample) == view_type) {
        PyObject **dictptr = _PyObject_GetDictPtr(sample);
        if (dictptr != NULL && *dictptr != NULL) {
            PyObject *keys = PyDict_GetItemWithError(*dictptr, str__keys);
            if (keys != NULL && PyDict_CheckExact(keys))
                return Py_NewRef(keys);
            if (keys == NULL && PyErr_Occurred())
                return NULL;
        }
    }
#endif
    return PyObject_CallMethodNoArgs(sample, str_keys);
}

PyDoc_STRVAR(set_view_doc,
"set_view(cls)\n--\n\n"
"The flow sample class (codec.fast.FlowSampleView) whose fields sample_rows reads by position.");

static PyObject *
set_view(PyObject *module, PyObject *cls)
{
    static const char *const names[N_FIELDS] = {
        "source_id_type", "source_id_index", "sampling_rate", "discarded", "frame_length"};
    PyObject *fields;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "set_view: a NamedTuple class");
        return NULL;
    }
    fields = PyObject_GetAttrString(cls, "_fields");
    if (fields == NULL)
        return NULL;
    if (!PyTuple_Check(fields)) {
        Py_DECREF(fields);
        PyErr_SetString(PyExc_TypeError, "set_view: _fields must be a tuple");
        return NULL;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        Py_ssize_t i, n = PyTuple_GET_SIZE(fields);
        for (i = 0; i < n; i++) {
            PyObject *name = PyTuple_GET_ITEM(fields, i);
            if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, names[f]) == 0)
                break;
        }
        if (i == n) {
            Py_DECREF(fields);
            return PyErr_Format(PyExc_TypeError, "set_view: no field %s", names[f]);
        }
        view_at[f] = i;
    }
    Py_DECREF(fields);
    Py_XSETREF(view_type, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

/* One sample: the key set bookkeeping, then (if with_rows) its row appended to rows or
 * dropped. c->stack (a strong reference) and c->size carry over from sample to sample. */
typedef struct {
    PyObject *agent, *now, *key_names, *key_sets, *data_source, *sources, *rows, *dropped;
    PyObject *with_rows, *needs_agent;  /* tested per sample, as the Python loop does */
    PyObject *stack;
    Py_ssize_t size;
} RowsCall;

static int
sample_row(RowsCall *c, PyObject *sample)
{
    PyObject *keys, *stack, *index = NULL, *src = NULL, *rate = NULL, *q = NULL, *row;
    Py_ssize_t size;
    int ret = -1, changed, flag, zero, discarded;

    keys = keys_of(sample);
    if (keys == NULL)
        return -1;
    /* if keys.get("stack") is not stack or len(keys) != size: another key set */
    stack = mapping_get(keys, str_stack);
    if (stack == NULL)
        goto done;
    changed = stack != c->stack;
    Py_DECREF(stack);
    if (!changed) {
        if ((size = PyObject_Size(keys)) < 0)
            goto done;
        changed = size != c->size;
    }
    if (changed) {  /* stack, size = keys.get("stack"), len(keys); note the signature */
        PyObject *signature, *size_obj;
        int known;
        stack = mapping_get(keys, str_stack);
        if (stack == NULL)
            goto done;
        Py_XSETREF(c->stack, stack);
        if ((size = PyObject_Size(keys)) < 0)
            goto done;
        c->size = size;
        size_obj = PyLong_FromSsize_t(size);
        if (size_obj == NULL)
            goto done;
        signature = PyTuple_Pack(2, stack, size_obj);
        Py_DECREF(size_obj);
        if (signature == NULL)
            goto done;
        known = PySequence_Contains(c->key_names, signature);
        if (known == 0) {
            PyObject *names = key_names_of(keys);
            known = names == NULL ? -1 : PyObject_SetItem(c->key_names, signature, names);
            Py_XDECREF(names);
        }
        if (known < 0 || PyObject_SetItem(c->key_sets, signature, c->now) < 0) {
            Py_DECREF(signature);
            goto done;
        }
        Py_DECREF(signature);
    }
    if ((flag = PyObject_IsTrue(c->with_rows)) <= 0) {  /* if not with_rows: continue */
        ret = flag;
        goto done;
    }
    if ((flag = PyObject_IsTrue(c->needs_agent)) < 0)
        goto done;
    if (flag) {
        Py_SETREF(keys, with_agent(keys, c->agent));
        if (keys == NULL)
            goto done;
    }
    index = field(sample, F_INDEX, str_source_id_index);
    if (index == NULL)
        goto done;
    {
        PyObject *kind = field(sample, F_TYPE, str_source_id_type), *eq;
        if (kind == NULL)
            goto done;
        eq = PyObject_RichCompare(kind, int_zero, Py_EQ);
        Py_DECREF(kind);
        if (eq == NULL)
            goto done;
        zero = PyObject_IsTrue(eq);
        Py_DECREF(eq);
        if (zero < 0)
            goto done;
    }
    if (zero) {
        src = mapping_get(c->sources, index);
        if (src == NULL)
            goto done;
        if (src == Py_None) {
            PyObject *text = text_of(index);
            Py_SETREF(src, text == NULL ? NULL : PyTuple_Pack(2, c->agent, text));
            Py_XDECREF(text);
            if (src == NULL || PyDict_SetItem(c->sources, index, src) < 0)
                goto done;
        }
    }
    else {
        PyObject *name = PyObject_CallOneArg(c->data_source, sample);
        if (name == NULL)
            goto done;
        src = PyTuple_Pack(2, c->agent, name);
        Py_DECREF(name);
        if (src == NULL)
            goto done;
    }
    rate = field(sample, F_RATE, str_sampling_rate);
    if (rate == NULL)
        goto done;
    {
        PyObject *value = field(sample, F_DISCARDED, str_discarded), *length;
        if (value == NULL)
            goto done;
        discarded = PyObject_IsTrue(value);
        Py_DECREF(value);
        if (discarded < 0)
            goto done;
        length = field(sample, F_LENGTH, str_frame_length);
        if (length == NULL)
            goto done;
        q = PyNumber_Multiply(length, rate);
        Py_DECREF(length);
        if (q == NULL)
            goto done;
    }
    row = PyTuple_Pack(5, src, keys, sample, q, rate);
    if (row == NULL)
        goto done;
    ret = PyList_Append(discarded ? c->dropped : c->rows, row);
    Py_DECREF(row);
done:
    Py_XDECREF(keys);
    Py_XDECREF(index);
    Py_XDECREF(src);
    Py_XDECREF(rate);
    Py_XDECREF(q);
    return ret;
}

PyDoc_STRVAR(sample_rows_doc,
"sample_rows(agent, samples, now, key_names, key_sets, with_rows, needs_agent, data_source)\n"
"--\n\n"
"flows._sample_rows in C: (rows, dropped) of one datagram's flow samples, key sets noted.");

static PyObject *
sample_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *samples, *it = NULL, *sample = NULL, *result = NULL;
    RowsCall c = {0};
    Py_ssize_t i = 0;

    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "sample_rows() takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    c.agent = args[0];
    samples = args[1];
    c.now = args[2];
    c.key_names = args[3];
    c.key_sets = args[4];
    c.data_source = args[7];
    c.with_rows = args[5];
    c.needs_agent = args[6];
    c.size = -1;
    c.rows = PyList_New(0);
    c.dropped = PyList_New(0);
    c.sources = PyDict_New();
    c.stack = Py_None;
    Py_INCREF(c.stack);
    if (c.rows == NULL || c.dropped == NULL || c.sources == NULL)
        goto done;
    if (!PyList_CheckExact(samples) && !PyTuple_CheckExact(samples)) {
        it = PyObject_GetIter(samples);
        if (it == NULL)
            goto done;
    }
    for (;;) {
        if (it == NULL) {
            if (i >= Py_SIZE(samples))
                break;
            sample = PySequence_Fast_ITEMS(samples)[i++];
            Py_INCREF(sample);
        }
        else if ((sample = PyIter_Next(it)) == NULL) {
            if (PyErr_Occurred())
                goto done;
            break;
        }
        if (sample_row(&c, sample) < 0)
            goto done;
        Py_CLEAR(sample);
    }
    result = PyTuple_Pack(2, c.rows, c.dropped);
done:
    Py_XDECREF(sample);
    Py_XDECREF(it);
    Py_XDECREF(c.rows);
    Py_XDECREF(c.dropped);
    Py_XDECREF(c.sources);
    Py_XDECREF(c.stack);
    return result;
}

PyDoc_STRVAR(expire_doc,
"expire(table, now, limit)\n"
"--\n\n"
"Delete the entries of table (a dict of entries) with now - entry.last > limit; how many.\n"
"The pure-Python sweep's comprehension in C (flows._CompiledFlow._expire).");

/* now - last > limit, as Python computes it (doubles when both are floats). */
static int
silent_too_long(PyObject *now, PyObject *last, PyObject *limit)
{
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(last) && PyFloat_CheckExact(limit))
        return PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(last) > PyFloat_AS_DOUBLE(limit);
    PyObject *silent = PyNumber_Subtract(now, last);
    if (silent == NULL)
        return -1;
    int r = PyObject_RichCompareBool(silent, limit, Py_GT);
    Py_DECREF(silent);
    return r;
}

static PyObject *
expire(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expire(table: dict, now, limit)");
        return NULL;
    }
    PyObject *table = args[0], *key, *entry, *dead = PyList_New(0);
    Py_ssize_t pos = 0;
    if (dead == NULL)
        return NULL;
    while (PyDict_Next(table, &pos, &key, &entry)) {
        PyObject *last = PyObject_GetAttr(entry, attr_names[S_LAST]);
        int r = last == NULL ? -1 : silent_too_long(args[1], last, args[2]);
        Py_XDECREF(last);
        if (r < 0 || (r && PyList_Append(dead, key) < 0)) {
            Py_DECREF(dead);
            return NULL;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(dead);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyDict_DelItem(table, PyList_GET_ITEM(dead, i)) < 0) {
            Py_DECREF(dead);
            return NULL;
        }
    }
    Py_DECREF(dead);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef rates_methods[] = {
    {"sample_rows", (PyCFunction)(void (*)(void))sample_rows, METH_FASTCALL, sample_rows_doc},
    {"expire", (PyCFunction)(void (*)(void))expire, METH_FASTCALL, expire_doc},
    {"set_view", set_view, METH_O, set_view_doc},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ module */

static struct PyModuleDef rates_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_rates",
    .m_doc = "The rate-flow ingest loop of sflowlab.collector.flows in C.",
    .m_size = -1,
    .m_methods = rates_methods,
};

PyMODINIT_FUNC
PyInit__rates(void)
{
    PyObject *m;
    if (PyType_Ready(&IngesterType) < 0)
        return NULL;
    if (str_get == NULL) {
        str_get = PyUnicode_InternFromString("get");
        str_empty = PyUnicode_New(0, 0);
        int_zero = PyLong_FromLong(0);
        if (str_get == NULL || str_empty == NULL || int_zero == NULL)
            return NULL;
        for (int s = 0; s < N_SLOTS; s++) {
            attr_names[s] = PyUnicode_InternFromString(slot_names[s]);
            if (attr_names[s] == NULL)
                return NULL;
        }
        if ((str_keys = PyUnicode_InternFromString("keys")) == NULL
                || (str_stack = PyUnicode_InternFromString("stack")) == NULL
                || (str_agent = PyUnicode_InternFromString("agent")) == NULL
                || (str_source_id_index = PyUnicode_InternFromString("source_id_index")) == NULL
                || (str_source_id_type = PyUnicode_InternFromString("source_id_type")) == NULL
                || (str_sampling_rate = PyUnicode_InternFromString("sampling_rate")) == NULL
                || (str_discarded = PyUnicode_InternFromString("discarded")) == NULL
                || (str_frame_length = PyUnicode_InternFromString("frame_length")) == NULL
                || (str__keys = PyUnicode_InternFromString("_keys")) == NULL)
            return NULL;
    }
    m = PyModule_Create(&rates_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&IngesterType);
    if (PyModule_AddObject(m, "RateIngester", (PyObject *)&IngesterType) < 0) {
        Py_DECREF(&IngesterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
