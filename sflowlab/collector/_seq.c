/* sflowlab.collector._seq: SequenceTracker in C, the accelerator of agents.PySequenceTracker.
 *
 * The same classification of 32-bit wrapping sequence numbers (see agents.py, which documents
 * the rules); the 256-number window of numbers seen is four 64-bit words here and a Python int
 * there. tests/collector/test_agents.py drives both with the same streams and compares every
 * field after every number.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "structmember.h"

#define WINDOW 256
#define WORDS (WINDOW / 64)
#define MAX_GAP 100000

typedef struct {
    PyObject_HEAD
    long long received, lost, duplicates, out_of_order, resets, last;
    uint64_t seen[WORDS]; /* bit i (word i / 64, bit i % 64) set: number (last - i) was seen */
} Tracker;

static PyObject *OK, *LOST, *DUP, *OOO, *RESET; /* the verdicts, as agents.py spells them */

static void seen_one(Tracker *t) {
    memset(t->seen, 0, sizeof t->seen);
    t->seen[0] = 1;
}

/* seen = ((seen << n) | 1) & mask, for 1 <= n */
static void seen_shift_in(Tracker *t, uint64_t n) {
    if (n >= WINDOW) {
        seen_one(t);
        return;
    }
    unsigned words = (unsigned)(n / 64), bits = (unsigned)(n % 64);
    for (int i = WORDS - 1; i >= 0; i--) {
        int from = i - (int)words;
        uint64_t v = 0;
        if (from >= 0) {
            v = t->seen[from] << bits;
            if (bits && from >= 1)
                v |= t->seen[from - 1] >> (64 - bits);
        }
        t->seen[i] = v;
    }
    t->seen[0] |= 1;
}

static PyObject *reset(Tracker *t, long long seq) {
    t->resets++;
    t->last = seq;
    seen_one(t);
    return Py_NewRef(RESET);
}

static PyObject *Tracker_add(Tracker *t, PyObject *arg) {
    long long seq = PyLong_AsLongLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    t->received++;
    long long last = t->last;
    if (last < 0) {
        t->last = seq;
        seen_one(t);
        return Py_NewRef(OK);
    }
    uint64_t diff = ((uint64_t)seq - (uint64_t)last) & 0xFFFFFFFFu;
    if (diff == 1) {
        t->last = seq;
        seen_shift_in(t, 1);
        return Py_NewRef(OK);
    }
    if (diff > 0 && diff < 0x80000000u) {
        if (diff > MAX_GAP)
            return reset(t, seq);
        t->lost += (long long)diff - 1;
        t->last = seq;
        seen_shift_in(t, diff);
        return Py_NewRef(LOST);
    }
    uint64_t back = ((uint64_t)last - (uint64_t)seq) & 0xFFFFFFFFu; /* 0 when equal */
    if (back >= WINDOW || (seq <= 1 && 1 < last))
        return reset(t, seq);
    uint64_t bit = (uint64_t)1 << (back % 64);
    uint64_t *word = &t->seen[back / 64];
    if (*word & bit) {
        t->duplicates++;
        return Py_NewRef(DUP);
    }
    *word |= bit;
    t->out_of_order++;
    t->lost--;
    return Py_NewRef(OOO);
}

static PyObject *Tracker_reset(Tracker *t, PyObject *arg) {
    long long seq = PyLong_AsLongLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    return reset(t, seq);
}

static PyObject *Tracker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "SequenceTracker() takes no arguments");
        return NULL;
    }
    Tracker *t = (Tracker *)type->tp_alloc(type, 0);
    if (t != NULL)
        t->last = -1; /* the rest is zeroed by tp_alloc */
    return (PyObject *)t;
}

static PyObject *Tracker_get_seen(Tracker *t, void *closure) {
    (void)closure;
    PyObject *result = PyLong_FromUnsignedLongLong(t->seen[WORDS - 1]);
    PyObject *shift = PyLong_FromLong(64);
    for (int i = WORDS - 2; i >= 0 && result != NULL && shift != NULL; i--) {
        PyObject *word = PyLong_FromUnsignedLongLong(t->seen[i]);
        PyObject *moved = word ? PyNumber_Lshift(result, shift) : NULL;
        Py_SETREF(result, moved ? PyNumber_Or(moved, word) : NULL);
        Py_XDECREF(moved);
        Py_XDECREF(word);
    }
    Py_XDECREF(shift);
    return result;
}

static int Tracker_set_seen(Tracker *t, PyObject *value, void *closure) {
    (void)closure;
    PyObject *zero = PyLong_FromLong(0), *shift = PyLong_FromLong(64);
    int negative = (value != NULL && PyLong_Check(value) && zero != NULL)
                   ? PyObject_RichCompareBool(value, zero, Py_LT) : 1;
    Py_XDECREF(zero);
    uint64_t words[WORDS];
    PyObject *rest = negative == 0 ? Py_NewRef(value) : NULL;
    for (int i = 0; i < WORDS && rest != NULL && shift != NULL; i++) {
        words[i] = PyLong_AsUnsignedLongLongMask(rest);
        Py_SETREF(rest, PyNumber_Rshift(rest, shift));
    }
    Py_XDECREF(shift);
    int wide = rest != NULL ? PyObject_IsTrue(rest) : 1; /* bits left past the window */
    Py_XDECREF(rest);
    if (wide || PyErr_Occurred()) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "seen must be an int of 0 to 256 bits");
        return -1;
    }
    memcpy(t->seen, words, sizeof words);
    return 0;
}

static PyObject *Tracker_repr(Tracker *t) {
    return PyUnicode_FromFormat(
        "SequenceTracker(received=%lld, lost=%lld, duplicates=%lld, out_of_order=%lld, "
        "resets=%lld, last=%lld)", t->received, t->lost, t->duplicates, t->out_of_order,
        t->resets, t->last);
}

static PyMethodDef Tracker_methods[] = {
    {"add", (PyCFunction)Tracker_add, METH_O,
     "Record seq; returns \"ok\", \"lost\", \"dup\", \"ooo\" or \"reset\"."},
    {"_reset", (PyCFunction)Tracker_reset, METH_O, "Start a new epoch at seq."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Tracker_members[] = {
    {"received", T_LONGLONG, offsetof(Tracker, received), 0, NULL},
    {"lost", T_LONGLONG, offsetof(Tracker, lost), 0, NULL},
    {"duplicates", T_LONGLONG, offsetof(Tracker, duplicates), 0, NULL},
    {"out_of_order", T_LONGLONG, offsetof(Tracker, out_of_order), 0, NULL},
    {"resets", T_LONGLONG, offsetof(Tracker, resets), 0, NULL},
    {"last", T_LONGLONG, offsetof(Tracker, last), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Tracker_getset[] = {
    {"seen", (getter)Tracker_get_seen, (setter)Tracker_set_seen,
     "bit i set: number (last - i) was seen", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sflowlab.collector._seq.SequenceTracker",
    .tp_basicsize = sizeof(Tracker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Classifies the sequence numbers of one stream (32-bit, wrapping).",
    .tp_new = Tracker_new,
    .tp_repr = (reprfunc)Tracker_repr,
    .tp_methods = Tracker_methods,
    .tp_members = Tracker_members,
    .tp_getset = Tracker_getset,
};

static PyObject *FLOW, *DISCARD, *A_DISCARDED, *A_TYPE, *A_INDEX, *A_SEQUENCE;

/* A sample's attribute as a new reference. */
#define GET(obj, name) PyObject_GetAttr((obj), (name))

PyDoc_STRVAR(fresh_flow_samples_doc,
"fresh_flow_samples(samplers, samples)\n"
"--\n\n"
"The flow samples that are not duplicates, each counted by its sampler's tracker in samplers\n"
"(keyed (\"discard\" | \"flow\", source_id_type, source_id_index), made when missing): the\n"
"engine's loop over a datagram's flow samples, in C.");

static PyObject *fresh_flow_samples(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyDict_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fresh_flow_samples(samplers: dict, samples: list)");
        return NULL;
    }
    PyObject *samplers = args[0], *samples = args[1], *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(samples); i++) {
        PyObject *sample = PyList_GET_ITEM(samples, i), *key = NULL, *verdict = NULL;
        PyObject *discarded = GET(sample, A_DISCARDED), *type = NULL, *index = NULL, *seq = NULL;
        int is_discard = discarded == NULL ? -1 : PyObject_IsTrue(discarded);
        if (is_discard < 0 || !(type = GET(sample, A_TYPE)) || !(index = GET(sample, A_INDEX))
            || !(seq = GET(sample, A_SEQUENCE))
            || !(key = PyTuple_Pack(3, is_discard ? DISCARD : FLOW, type, index)))
            goto fail;
        PyObject *tracker = PyDict_GetItemWithError(samplers, key); /* borrowed */
        if (tracker == NULL) {
            if (PyErr_Occurred())
                goto fail;
            tracker = PyObject_CallNoArgs((PyObject *)&TrackerType);
            if (tracker == NULL || PyDict_SetItem(samplers, key, tracker) < 0) {
                Py_XDECREF(tracker);
                goto fail;
            }
            Py_DECREF(tracker); /* the dict holds it */
        }
        verdict = Py_IS_TYPE(tracker, &TrackerType) ? Tracker_add((Tracker *)tracker, seq)
                  : PyObject_CallMethod(tracker, "add", "O", seq);
        if (verdict == NULL)
            goto fail;
        int dup = PyObject_RichCompareBool(verdict, DUP, Py_EQ);
        if (dup < 0)
            goto fail;
        if (!dup && PyList_Append(fresh, sample) < 0)
            goto fail;
        Py_DECREF(verdict);
        Py_DECREF(key);
        Py_DECREF(seq);
        Py_DECREF(index);
        Py_DECREF(type);
        Py_DECREF(discarded);
        continue;
    fail:
        Py_XDECREF(verdict);
        Py_XDECREF(key);
        Py_XDECREF(seq);
        Py_XDECREF(index);
        Py_XDECREF(type);
        Py_XDECREF(discarded);
        Py_DECREF(fresh);
        return NULL;
    }
    return fresh;
}

static PyMethodDef seq_methods[] = {
    {"fresh_flow_samples", (PyCFunction)(void (*)(void))fresh_flow_samples, METH_FASTCALL,
     fresh_flow_samples_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef seq_module = {
    PyModuleDef_HEAD_INIT, "_seq", "SequenceTracker in C (see sflowlab.collector.agents).", -1,
    seq_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__seq(void) {
    if (PyType_Ready(&TrackerType) < 0)
        return NULL;
    if (!(OK = PyUnicode_InternFromString("ok")) || !(LOST = PyUnicode_InternFromString("lost"))
        || !(DUP = PyUnicode_InternFromString("dup")) || !(OOO = PyUnicode_InternFromString("ooo"))
        || !(RESET = PyUnicode_InternFromString("reset"))
        || !(FLOW = PyUnicode_InternFromString("flow"))
        || !(DISCARD = PyUnicode_InternFromString("discard"))
        || !(A_DISCARDED = PyUnicode_InternFromString("discarded"))
        || !(A_TYPE = PyUnicode_InternFromString("source_id_type"))
        || !(A_INDEX = PyUnicode_InternFromString("source_id_index"))
        || !(A_SEQUENCE = PyUnicode_InternFromString("sequence_number")))
        return NULL;
    PyObject *m = PyModule_Create(&seq_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "SequenceTracker", (PyObject *)&TrackerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
