/* sflowlab.collector._metrics: the record loop of MetricTable.update in C.
 *
 * Applier(specs, virt_cpu, stopped_states) is, once built, the accelerator of
 * metrics._py_apply: called as applier(prev, out, records, uptime_ms, received_at, ds_type)
 * it applies one counter sample's records to a data source (``prev``: record class ->
 * (record, uptime_ms, received_at) of the last sample, ``out``: the metric values) and
 * returns True when a virt_cpu record says the container stopped. specs maps each record
 * class with metrics to (gauges, rates, derive, static): gauges ((field index, metric), ...),
 * rates ((field index, metric, modulus), ...) with modulus 0 for a 64-bit counter (going
 * back is a discontinuity), derive a callable or None. The statements are metrics.py's (see
 * RecordSpec._generate): the same stores in the same order, the same calls of derive, the
 * same exceptions; plain numbers take C arithmetic giving the same floats, anything else the
 * Python operators. tests/collector/test_metrics_apply.py runs both on the same samples.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#define EXACT_DOUBLE (1LL << 53) /* |n| up to this converts to a double exactly */
#define STACK_RATES 32           /* rates of a record held on the stack (more: on the heap) */

typedef struct {
    Py_ssize_t n_gauges, n_rates;
    Py_ssize_t *gauge_at, *rate_at;
    PyObject **gauge_name, **rate_name, **rate_index, **gauge_index;
    long long *mod;          /* 0: a 64-bit counter */
    PyObject **mod_obj;      /* the modulus as an int (NULL when 0) */
    PyObject *derive;        /* NULL when None */
    int is_static;
} Spec;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *index;         /* dict: record class -> int, the position in specs */
    Spec *specs;
    Py_ssize_t n_specs;
    PyObject *virt_cpu;
    PyObject *stopped;
    PyObject *source;        /* the specs dict given, kept for traversal */
} Applier;

static PyObject *str_state, *float_zero, *float_thousand, *int_zero;
static PyObject *applier_call(PyObject *, PyObject *const *, size_t, PyObject *);

/* ------------------------------------------------------------------ numbers */

/* 1 and *out set when o is an exact int within a long long, 0 otherwise (no error set). */
static int
small_int(PyObject *o, long long *out)
{
    int overflow;
    if (!PyLong_CheckExact(o))
        return 0;
    *out = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* rec[i] as a new reference: the tuple's item when rec is a tuple (or a subclass that keeps
 * tuple's indexing), else rec[index]. */
static PyObject *
item(PyObject *rec, Py_ssize_t i, PyObject *index)
{
    if (PyTuple_Check(rec) && Py_TYPE(rec)->tp_as_mapping != NULL
            && Py_TYPE(rec)->tp_as_mapping->mp_subscript
               == PyTuple_Type.tp_as_mapping->mp_subscript
            && i < PyTuple_GET_SIZE(rec))
        return Py_NewRef(PyTuple_GET_ITEM(rec, i));
    return PyObject_GetItem(rec, index);
}

static int
store(PyObject *out, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int r = PyDict_CheckExact(out) ? PyDict_SetItem(out, name, value)
                                   : PyObject_SetItem(out, name, value);
    Py_DECREF(value);
    return r;
}

/* ------------------------------------------------------------------ one record */

/* One counter delta: rec[i] - prev[i], a 32-bit (or narrower) one wrapping, a 64-bit one
 * going back clearing *whole. As a long long in *d (*fast = 1) or as an object in *obj. */
static int
delta(Spec *s, Py_ssize_t r, PyObject *rec, PyObject *prev, long long *d, int *fast,
      PyObject **obj, int *whole)
{
    PyObject *a = item(rec, s->rate_at[r], s->rate_index[r]), *b;
    long long x, y;
    int ret = -1;
    if (a == NULL)
        return -1;
    b = item(prev, s->rate_at[r], s->rate_index[r]);
    if (b == NULL) {
        Py_DECREF(a);
        return -1;
    }
    *fast = small_int(a, &x) && small_int(b, &y) && !__builtin_sub_overflow(x, y, d);
    if (*fast) {
        if (*d < 0) {
            if (s->mod[r])
                *d += s->mod[r];
            else
                *whole = 0;
        }
        ret = 0;
        goto done;
    }
    *obj = PyNumber_Subtract(a, b);
    if (*obj == NULL)
        goto done;
    int neg = PyObject_RichCompareBool(*obj, int_zero, Py_LT);
    if (neg < 0)
        goto done;
    if (neg) {
        if (s->mod_obj[r] != NULL)
            Py_SETREF(*obj, PyNumber_InPlaceAdd(*obj, s->mod_obj[r]));
        else
            *whole = 0;
    }
    ret = *obj == NULL ? -1 : 0;
done:
    Py_DECREF(a);
    Py_DECREF(b);
    return ret;
}

/* The generated update(rec, prev, dt_s, out, ds_type) of one record spec. dt: the object
 * dt_s, dt_d its value when dt_fast. */
static int
apply_spec(Spec *s, PyObject *rec, PyObject *prev, PyObject *dt, double dt_d, int dt_fast,
           PyObject *out, PyObject *ds_type)
{
    Py_ssize_t i;
    int positive = -1;  /* dt_s > 0, once asked */

    for (i = 0; i < s->n_gauges; i++) {
        if (store(out, s->gauge_name[i], item(rec, s->gauge_at[i], s->gauge_index[i])) < 0)
            return -1;
    }
    if (s->n_rates && prev != Py_None) {
        positive = dt_fast ? dt_d > 0 : PyObject_RichCompareBool(dt, int_zero, Py_GT);
        if (positive < 0)
            return -1;
        if (positive) {
            long long d_stack[STACK_RATES], *d = d_stack;
            PyObject *obj_stack[STACK_RATES], **obj = obj_stack;
            int fast_stack[STACK_RATES], *fast = fast_stack, whole = 1, ret = -1;
            Py_ssize_t r, done = 0;
            if (s->n_rates > STACK_RATES) {
                d = PyMem_New(long long, s->n_rates);
                obj = PyMem_New(PyObject *, s->n_rates);
                fast = PyMem_New(int, s->n_rates);
                if (d == NULL || obj == NULL || fast == NULL) {
                    PyErr_NoMemory();
                    goto rates_done;
                }
            }
            for (r = 0; r < s->n_rates; r++, done++) {
                obj[r] = NULL;
                if (delta(s, r, rec, prev, &d[r], &fast[r], &obj[r], &whole) < 0)
                    goto rates_done;
            }
            if (whole) {
                for (r = 0; r < s->n_rates; r++) {
                    PyObject *v;
                    if (fast[r] && dt_fast && d[r] <= EXACT_DOUBLE && d[r] >= -EXACT_DOUBLE) {
                        v = PyFloat_FromDouble((double)d[r] / dt_d);  /* dt_d > 0 */
                    }
                    else {
                        PyObject *n = fast[r] ? PyLong_FromLongLong(d[r]) : Py_NewRef(obj[r]);
                        v = n == NULL ? NULL : PyNumber_TrueDivide(n, dt);
                        Py_XDECREF(n);
                    }
                    if (store(out, s->rate_name[r], v) < 0)
                        goto rates_done;
                }
            }
            else {
                prev = Py_None;
            }
            ret = 0;
        rates_done:
            if (obj != NULL)
                for (r = 0; r < done; r++)
                    Py_XDECREF(obj[r]);
            if (d != d_stack) {
                PyMem_Free(d);
                PyMem_Free(obj);
                PyMem_Free(fast);
            }
            if (ret < 0)
                return -1;
        }
    }
    if (s->derive != NULL) {
        if (positive < 0) {
            positive = dt_fast ? dt_d > 0 : PyObject_RichCompareBool(dt, int_zero, Py_GT);
            if (positive < 0)
                return -1;
        }
        PyObject *args[5] = {rec, positive ? prev : Py_None, dt, out, ds_type};
        PyObject *r = PyObject_Vectorcall(s->derive, args, 5, NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* dt_s = (uptime_ms - last_uptime) / 1000.0, or received_at - last_received when that is
 * not positive: a new reference, with its double in *dt_d when *dt_fast. */
static PyObject *
elapsed(PyObject *uptime, PyObject *received, PyObject *last_uptime, PyObject *last_received,
        double *dt_d, int *dt_fast)
{
    long long a, b, d;
    PyObject *dt;
    int le;

    *dt_fast = 0;
    if (small_int(uptime, &a) && small_int(last_uptime, &b) && !__builtin_sub_overflow(a, b, &d)
            && d <= EXACT_DOUBLE && d >= -EXACT_DOUBLE) {
        *dt_d = (double)d / 1000.0;  /* as int / float converts: exactly, then divides */
        if (*dt_d > 0) {
            *dt_fast = 1;
            return PyFloat_FromDouble(*dt_d);
        }
        if (PyFloat_CheckExact(received) && PyFloat_CheckExact(last_received)) {
            *dt_d = PyFloat_AS_DOUBLE(received) - PyFloat_AS_DOUBLE(last_received);
            *dt_fast = 1;
            return PyFloat_FromDouble(*dt_d);
        }
        dt = PyNumber_Subtract(received, last_received);
    }
    else {
        PyObject *n = PyNumber_Subtract(uptime, last_uptime);
        if (n == NULL)
            return NULL;
        dt = PyNumber_TrueDivide(n, float_thousand);
        Py_DECREF(n);
        if (dt == NULL)
            return NULL;
        le = PyObject_RichCompareBool(dt, int_zero, Py_LE);
        if (le < 0) {
            Py_DECREF(dt);
            return NULL;
        }
        if (le)
            Py_SETREF(dt, PyNumber_Subtract(received, last_received));
    }
    if (dt != NULL && PyFloat_CheckExact(dt)) {
        *dt_d = PyFloat_AS_DOUBLE(dt);
        *dt_fast = 1;
    }
    return dt;
}

/* ------------------------------------------------------------------ the call */

static PyObject *
mapping_get(PyObject *mapping, PyObject *key)
{
    if (PyDict_CheckExact(mapping)) {
        PyObject *v = PyDict_GetItemWithError(mapping, key);
        if (v == NULL)
            return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        return Py_NewRef(v);
    }
    return PyObject_CallMethod(mapping, "get", "O", key);
}

/* One record; 1 when it is a virt_cpu record of a stopped container, -1 on error. */
static int
apply_record(Applier *self, PyObject *prev_map, PyObject *out, PyObject *rec,
             PyObject *uptime, PyObject *received, PyObject *ds_type)
{
    PyObject *cls = (PyObject *)Py_TYPE(rec), *pos, *last = NULL, *prev = Py_None;
    PyObject *dt = NULL, *parts[3] = {NULL, NULL, NULL}, *entry;
    double dt_d = 0.0;
    int dt_fast = 1, ret = -1;
    Spec *s;

    pos = PyDict_GetItemWithError(self->index, cls);
    if (pos == NULL)
        return PyErr_Occurred() ? -1 : 0;
    s = &self->specs[PyLong_AsSsize_t(pos)];
    last = mapping_get(prev_map, cls);
    if (last == NULL)
        return -1;
    if (last != Py_None) {
        for (int i = 0; i < 3; i++) {
            parts[i] = PySequence_GetItem(last, i);
            if (parts[i] == NULL)
                goto done;
        }
        if (parts[0] == rec && s->is_static) {
            ret = 0;
            goto done;
        }
        prev = parts[0];
        dt = elapsed(uptime, received, parts[1], parts[2], &dt_d, &dt_fast);
        if (dt == NULL)
            goto done;
    }
    else {
        dt = Py_NewRef(float_zero);
    }
    if (apply_spec(s, rec, prev, dt, dt_d, dt_fast, out, ds_type) < 0)
        goto done;
    entry = PyTuple_Pack(3, rec, uptime, received);
    if (entry == NULL)
        goto done;
    ret = PyDict_CheckExact(prev_map) ? PyDict_SetItem(prev_map, cls, entry)
                                      : PyObject_SetItem(prev_map, cls, entry);
    Py_DECREF(entry);
    if (ret < 0)
        goto done;
    if (cls == self->virt_cpu) {
        PyObject *state = PyObject_GetAttr(rec, str_state);
        if (state == NULL) {
            ret = -1;
            goto done;
        }
        ret = PySequence_Contains(self->stopped, state);
        Py_DECREF(state);
    }
done:
    Py_XDECREF(last);
    Py_XDECREF(dt);
    for (int i = 0; i < 3; i++)
        Py_XDECREF(parts[i]);
    return ret;
}

static PyObject *
applier_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Applier *self = (Applier *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), i;
    PyObject *records, *it, *rec;
    int stopped = 0, r;

    if (nargs != 6 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "apply(prev, out, records, uptime_ms, received_at,"
                        " ds_type) takes 6 positional arguments");
        return NULL;
    }
    records = args[2];
    if (PyTuple_CheckExact(records) || PyList_CheckExact(records)) {
        for (i = 0; i < Py_SIZE(records); i++) {
            rec = Py_NewRef(PySequence_Fast_ITEMS(records)[i]);
            r = apply_record(self, args[0], args[1], rec, args[3], args[4], args[5]);
            Py_DECREF(rec);
            if (r < 0)
                return NULL;
            stopped |= r;
        }
        return PyBool_FromLong(stopped);
    }
    it = PyObject_GetIter(records);
    if (it == NULL)
        return NULL;
    while ((rec = PyIter_Next(it)) != NULL) {
        r = apply_record(self, args[0], args[1], rec, args[3], args[4], args[5]);
        Py_DECREF(rec);
        if (r < 0) {
            Py_DECREF(it);
            return NULL;
        }
        stopped |= r;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(stopped);
}

/* ------------------------------------------------------------------ construction */

static void
spec_free(Spec *s)
{
    Py_ssize_t i;
    for (i = 0; i < s->n_gauges && s->gauge_name && s->gauge_index; i++) {
        Py_XDECREF(s->gauge_name[i]);
        Py_XDECREF(s->gauge_index[i]);
    }
    for (i = 0; i < s->n_rates && s->rate_name && s->rate_index && s->mod_obj; i++) {
        Py_XDECREF(s->rate_name[i]);
        Py_XDECREF(s->rate_index[i]);
        Py_XDECREF(s->mod_obj[i]);
    }
    PyMem_Free(s->gauge_at);
    PyMem_Free(s->rate_at);
    PyMem_Free(s->gauge_name);
    PyMem_Free(s->rate_name);
    PyMem_Free(s->gauge_index);
    PyMem_Free(s->rate_index);
    PyMem_Free(s->mod);
    PyMem_Free(s->mod_obj);
    Py_CLEAR(s->derive);
}

/* (gauges, rates, derive, static) into *s; -1 with TypeError when malformed. */
static int
spec_init(Spec *s, PyObject *t)
{
    PyObject *gauges, *rates, *derive, *is_static;
    Py_ssize_t i;
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 4)
        goto bad;
    gauges = PyTuple_GET_ITEM(t, 0);
    rates = PyTuple_GET_ITEM(t, 1);
    derive = PyTuple_GET_ITEM(t, 2);
    is_static = PyTuple_GET_ITEM(t, 3);
    if (!PyTuple_CheckExact(gauges) || !PyTuple_CheckExact(rates)
            || (derive != Py_None && !PyCallable_Check(derive)))
        goto bad;
    s->n_gauges = PyTuple_GET_SIZE(gauges);
    s->n_rates = PyTuple_GET_SIZE(rates);
    s->gauge_at = PyMem_New(Py_ssize_t, s->n_gauges + 1);
    s->gauge_name = PyMem_Calloc(s->n_gauges + 1, sizeof(PyObject *));
    s->gauge_index = PyMem_Calloc(s->n_gauges + 1, sizeof(PyObject *));
    s->rate_at = PyMem_New(Py_ssize_t, s->n_rates + 1);
    s->rate_name = PyMem_Calloc(s->n_rates + 1, sizeof(PyObject *));
    s->rate_index = PyMem_Calloc(s->n_rates + 1, sizeof(PyObject *));
    s->mod = PyMem_New(long long, s->n_rates + 1);
    s->mod_obj = PyMem_Calloc(s->n_rates + 1, sizeof(PyObject *));
    if (!s->gauge_at || !s->gauge_name || !s->gauge_index || !s->rate_at || !s->rate_name
            || !s->rate_index || !s->mod || !s->mod_obj) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < s->n_gauges; i++) {
        PyObject *g = PyTuple_GET_ITEM(gauges, i);
        if (!PyTuple_CheckExact(g) || PyTuple_GET_SIZE(g) != 2
                || !PyLong_CheckExact(PyTuple_GET_ITEM(g, 0)))
            goto bad;
        s->gauge_at[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(g, 0));
        if (s->gauge_at[i] < 0)
            goto bad;
        s->gauge_index[i] = Py_NewRef(PyTuple_GET_ITEM(g, 0));
        s->gauge_name[i] = Py_NewRef(PyTuple_GET_ITEM(g, 1));
    }
    for (i = 0; i < s->n_rates; i++) {
        PyObject *r = PyTuple_GET_ITEM(rates, i);
        if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 3
                || !PyLong_CheckExact(PyTuple_GET_ITEM(r, 0))
                || !PyLong_CheckExact(PyTuple_GET_ITEM(r, 2)))
            goto bad;
        s->rate_at[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 0));
        s->mod[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 2));
        if (s->rate_at[i] < 0 || s->mod[i] < 0 || s->mod[i] > (1LL << 32))
            goto bad;
        s->rate_index[i] = Py_NewRef(PyTuple_GET_ITEM(r, 0));
        s->rate_name[i] = Py_NewRef(PyTuple_GET_ITEM(r, 1));
        if (s->mod[i] && (s->mod_obj[i] = PyLong_FromLongLong(s->mod[i])) == NULL)
            return -1;
    }
    s->derive = derive == Py_None ? NULL : Py_NewRef(derive);
    s->is_static = PyObject_IsTrue(is_static);
    return s->is_static < 0 ? -1 : 0;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "Applier: a spec is (((index, metric), ...), "
                        "((index, metric, modulus 0..2**32), ...), derive or None, static)");
    return -1;
}

static int
applier_clear(PyObject *op)
{
    Applier *self = (Applier *)op;
    for (Py_ssize_t i = 0; i < self->n_specs; i++)
        spec_free(&self->specs[i]);
    PyMem_Free(self->specs);
    self->specs = NULL;
    self->n_specs = 0;
    Py_CLEAR(self->index);
    Py_CLEAR(self->virt_cpu);
    Py_CLEAR(self->stopped);
    Py_CLEAR(self->source);
    return 0;
}

static int
applier_traverse(PyObject *op, visitproc visit, void *arg)
{
    Applier *self = (Applier *)op;
    Py_VISIT(self->source);  /* holds every class, name and derive the specs hold */
    Py_VISIT(self->virt_cpu);
    Py_VISIT(self->stopped);
    Py_VISIT(self->index);
    return 0;
}

static void
applier_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    applier_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *
applier_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"specs", "virt_cpu", "stopped_states", NULL};
    PyObject *specs, *virt_cpu, *stopped, *cls, *value;
    Py_ssize_t pos = 0, i = 0;
    Applier *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO:Applier", kwlist, &PyDict_Type, &specs,
                                     &virt_cpu, &stopped))
        return NULL;
    self = (Applier *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = applier_call;
    self->source = Py_NewRef(specs);
    self->virt_cpu = Py_NewRef(virt_cpu);
    self->stopped = Py_NewRef(stopped);
    self->index = PyDict_New();
    self->specs = PyMem_New(Spec, PyDict_GET_SIZE(specs) + 1);
    if (self->index == NULL || self->specs == NULL)
        goto fail;
    while (PyDict_Next(specs, &pos, &cls, &value)) {
        memset(&self->specs[i], 0, sizeof(Spec));
        self->n_specs = i + 1;
        if (spec_init(&self->specs[i], value) < 0)
            goto fail;
        PyObject *n = PyLong_FromSsize_t(i);
        if (n == NULL || PyDict_SetItem(self->index, cls, n) < 0) {
            Py_XDECREF(n);
            goto fail;
        }
        Py_DECREF(n);
        i++;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *
applier_tp_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    return PyVectorcall_Call(op, args, kwargs);
}

static PyTypeObject ApplierType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sflowlab.collector._metrics.Applier",
    .tp_basicsize = sizeof(Applier),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Applier(specs, virt_cpu, stopped_states): metrics._py_apply in C.",
    .tp_new = applier_new,
    .tp_dealloc = applier_dealloc,
    .tp_traverse = applier_traverse,
    .tp_clear = applier_clear,
    .tp_call = applier_tp_call,
    .tp_vectorcall_offset = 0,
};

static struct PyModuleDef metrics_module = {
    PyModuleDef_HEAD_INIT, "_metrics",
    "The record loop of MetricTable.update in C (see sflowlab.collector.metrics).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__metrics(void)
{
    ApplierType.tp_vectorcall_offset = offsetof(Applier, vectorcall);
    if (PyType_Ready(&ApplierType) < 0)
        return NULL;
    if (!(str_state = PyUnicode_InternFromString("state"))
            || !(float_zero = PyFloat_FromDouble(0.0))
            || !(float_thousand = PyFloat_FromDouble(1000.0))
            || !(int_zero = PyLong_FromLong(0)))
        return NULL;
    PyObject *m = PyModule_Create(&metrics_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Applier", (PyObject *)&ApplierType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
