// The launch cache's key in one C call, for the Python kernels (src/mpskernels/cxx_host.py builds this at first use).
//
// key(*args) -> (bytes, class, value, ...): the bytes hold, for every tensor argument, its rank, sizes, strides,
// dtype, device and requires_grad, and a tag for every None; every other argument follows the bytes as its class
// and its value, as the Python key has them. The Python version reads five attributes per tensor and hashes the
// tuples they make (about half a microsecond a tensor); this reads them from the C++ tensor directly.

#include <Python.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <pybind11/pybind11.h>

#include "host.h"
#include <torch/csrc/autograd/python_variable.h>

namespace {

enum Tag : int64_t { kNone = -1, kTensor = -2, kOther = -3 };

PyObject* key(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  std::vector<int64_t> words;
  words.reserve(16 * static_cast<size_t>(nargs));
  std::vector<PyObject*> others;
  try {
    for (Py_ssize_t i = 0; i < nargs; ++i) {
      PyObject* a = args[i];
      if (a == Py_None) {
        words.push_back(kNone);
      } else if (THPVariable_Check(a)) {
        const at::Tensor& t = THPVariable_Unpack(a);
        if (t.layout() != at::kStrided || t.is_nested()) {
          PyErr_SetString(PyExc_TypeError, "mpskernels takes strided tensors");
          return nullptr;
        }
        auto sizes = t.sizes();
        auto strides = t.strides();
        words.push_back(kTensor);
        words.push_back(static_cast<int64_t>(sizes.size()));
        words.insert(words.end(), sizes.begin(), sizes.end());
        words.insert(words.end(), strides.begin(), strides.end());
        const auto device = t.device();
        words.push_back((static_cast<int64_t>(t.scalar_type()) << 32) |
                        (static_cast<int64_t>(static_cast<uint8_t>(device.type())) << 16) |
                        (static_cast<int64_t>(static_cast<uint8_t>(device.index())) << 8) |
                        static_cast<int64_t>(t.requires_grad()));
      } else {
        words.push_back(kOther);  // its place among the arguments: (1, None) and (None, 1) differ
        others.push_back(a);
      }
    }
  } catch (const std::exception& e) {  // e.g. a tensor with symbolic sizes
    PyErr_SetString(PyExc_TypeError, e.what());
    return nullptr;
  }
  PyObject* result = PyTuple_New(1 + 2 * static_cast<Py_ssize_t>(others.size()));
  if (result == nullptr) return nullptr;
  PyObject* bytes = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(words.data()),
                                              static_cast<Py_ssize_t>(words.size() * sizeof(int64_t)));
  if (bytes == nullptr) {
    Py_DECREF(result);
    return nullptr;
  }
  PyTuple_SET_ITEM(result, 0, bytes);
  Py_ssize_t slot = 1;
  for (PyObject* o : others) {
    PyObject* cls = reinterpret_cast<PyObject*>(Py_TYPE(o));
    Py_INCREF(cls);
    Py_INCREF(o);
    PyTuple_SET_ITEM(result, slot++, cls);
    PyTuple_SET_ITEM(result, slot++, o);
  }
  return result;
}

PyMethodDef key_def = {"key", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(key)), METH_FASTCALL,
                       "The launch cache key of an op call's arguments."};

}  // namespace

void bind_launch_key(pybind11::module_& m) {
  m.add_object("key", pybind11::reinterpret_steal<pybind11::object>(PyCFunction_New(&key_def, nullptr)));
}
