// The dispatcher's kernels for mpskernels ops (src/mpskernels/registry.py installs them once this extension is
// built; until then, and wherever it cannot be built, the Python kernels serve alone).
//
// A call through torch.ops.mpskernels.<op> reaches a Python kernel through the dispatcher, and every such trip
// turns the boxed arguments into Python objects and the result back: about as much host time as the op's own
// work. These kernels keep that trip only where Python decides: the first call with each launch key, autograd
// recording, the reference fallback. A repeated call whose outputs are shaped like its inputs (registry.py's
// "simple" Launch) is: key from the boxed arguments -> cached entry -> outputs allocated here -> one Python call,
// the backend launch (OpRunner.run_into), with the tensors it needs.
//
//   CPU, MPS                   CallKernel: the above; registered over the Python kernel for the same key
//   AutogradCPU, AutogradMPS   AutogradKernel: nothing records -> redispatch below autograd (no Python);
//                              else the op's Python Autograd kernel (registry.autograd_kernel)

#include <torch/extension.h>
#include <torch/library.h>

#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/jit/python/pybind_utils.h>

#include <atomic>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "host.h"

namespace py = pybind11;

namespace {

using torch::jit::Stack;

// Entries per op and dispatch key; past this, new keys go the long way (the Python cache keeps its own bound).
constexpr size_t kMaxEntries = 4096;

std::atomic<uint64_t> repeated_calls{0};  // calls served from an entry (tests check that the path is taken)

void put(std::string& key, int64_t word) { key.append(reinterpret_cast<const char*>(&word), sizeof word); }

// Appends one argument to a call's key: its kind and value, a tensor as its rank, sizes, strides, dtype, device
// and requires_grad. False for an argument the key cannot hold (the call then goes the long way).
bool append_key(const c10::IValue& v, std::string& key) {
  if (v.isNone()) {
    put(key, -1);
  } else if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.layout() != at::kStrided || t.is_nested() || t.unsafeGetTensorImpl()->has_symbolic_sizes_strides()) {
      return false;
    }
    put(key, -2);
    put(key, t.dim());
    for (int64_t s : t.sizes()) put(key, s);
    for (int64_t s : t.strides()) put(key, s);
    const auto device = t.device();
    put(key, (static_cast<int64_t>(t.scalar_type()) << 32) |
                 (static_cast<int64_t>(static_cast<uint8_t>(device.type())) << 16) |
                 (static_cast<int64_t>(static_cast<uint8_t>(device.index())) << 8) |
                 static_cast<int64_t>(t.requires_grad()));
  } else if (v.isDouble()) {
    const double d = v.toDouble();
    int64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    put(key, -3);
    put(key, bits);
  } else if (v.isBool()) {
    put(key, -4);
    put(key, v.toBool());
  } else if (v.isInt()) {
    put(key, -5);
    put(key, v.toInt());
  } else if (v.isString()) {
    const std::string& s = v.toStringRef();
    put(key, -6);
    put(key, static_cast<int64_t>(s.size()));
    key.append(s);
  } else {
    return false;
  }
  return true;
}

py::tuple python_arguments(c10::ArrayRef<c10::IValue> args, size_t first_slot = 0) {
  py::tuple values(first_slot + args.size());
  for (size_t i = 0; i < args.size(); ++i) values[first_slot + i] = torch::jit::toPyObject(args[i]);
  return values;
}

// Replaces the arguments on the stack by what a Python kernel returned, as the op's schema types it.
void push_result(const c10::OperatorHandle& op, Stack* stack, size_t arguments, const py::object& result) {
  const auto& returns = op.schema().returns();
  torch::jit::drop(*stack, arguments);
  if (returns.size() == 1) {
    stack->emplace_back(torch::jit::toIValue(result, returns[0].type()));
    return;
  }
  if (returns.empty()) return;
  py::tuple values = result.cast<py::tuple>();
  for (size_t i = 0; i < returns.size(); ++i) stack->emplace_back(torch::jit::toIValue(values[i], returns[i].type()));
}

py::object call(PyObject* function, const py::tuple& arguments) {
  PyObject* result = PyObject_Call(function, arguments.ptr(), nullptr);
  if (result == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(result);
}

// A repeated call's entry: which inputs the outputs are shaped like, and the Python call that launches.
struct Entry {
  std::vector<size_t> like;  // input position of each output
  PyObject* launch;          // launch(args, outputs) -> None once launched, else the call's result (a new reference)
};

class CallKernel final : public c10::OperatorKernel {
 public:
  // run(*args): the op's Python kernel. learn(*args) -> (like, launch) or None: after a call, whether later calls
  // with these arguments' key can take the repeated path. Both live as long as the process (never released: the
  // dispatcher may outlive the interpreter).
  CallKernel(PyObject* run, PyObject* learn) : run_(run), learn_(learn) { all().push_back(this); }

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet, Stack* stack) {
    const size_t n = op.schema().arguments().size();
    const auto args = torch::jit::last(*stack, n);
    std::string key;
    key.reserve(256);
    bool keyed = true;
    for (const auto& a : args) {
      if (!append_key(a, key)) {
        keyed = false;
        break;
      }
    }
    py::gil_scoped_acquire gil;  // also guards entries_
    if (keyed) {
      auto found = entries_.find(key);
      if (found != entries_.end()) return repeat(found->second, op, stack, n);  // a copy: Python may clear()
    }
    py::tuple values = python_arguments(args);
    py::object result = call(run_, values);
    if (keyed && entries_.size() < kMaxEntries) learn(std::move(key), values);
    push_result(op, stack, n, result);
  }

  void clear() {  // with the GIL held
    for (auto& item : entries_) Py_DECREF(item.second.launch);
    entries_.clear();
  }

  static std::vector<CallKernel*>& all() {
    static auto* kernels = new std::vector<CallKernel*>();  // never destroyed, as the kernels are not
    return *kernels;
  }

 private:
  void repeat(Entry entry, const c10::OperatorHandle& op, Stack* stack, size_t n) {
    auto launch = py::reinterpret_borrow<py::object>(entry.launch);  // held while it runs
    const auto args = torch::jit::last(*stack, n);
    std::vector<at::Tensor> outputs;
    outputs.reserve(entry.like.size());
    for (size_t position : entry.like) outputs.push_back(at::empty_like(args[position].toTensor()));
    py::tuple outputs_py(outputs.size());
    for (size_t i = 0; i < outputs.size(); ++i) {
      outputs_py[i] = py::reinterpret_steal<py::object>(THPVariable_Wrap(outputs[i]));
    }
    py::object result = call(launch.ptr(), py::make_tuple(python_arguments(args), outputs_py));
    ++repeated_calls;
    if (!result.is_none()) return push_result(op, stack, n, result);  // it went the long way (its own outputs)
    torch::jit::drop(*stack, n);
    for (auto& t : outputs) stack->emplace_back(std::move(t));
  }

  void learn(std::string key, const py::tuple& values) {
    py::object learned = call(learn_, values);
    if (learned.is_none()) return;
    py::tuple pair = learned.cast<py::tuple>();
    py::object launch = pair[1];
    Entry entry{pair[0].cast<std::vector<size_t>>(), launch.release().ptr()};
    if (!entries_.emplace(std::move(key), entry).second) Py_DECREF(entry.launch);
  }

  PyObject* run_;
  PyObject* learn_;
  std::unordered_map<std::string, Entry> entries_;
};

class AutogradKernel final : public c10::OperatorKernel {
 public:
  explicit AutogradKernel(PyObject* recording) : recording_(recording) {}

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet keyset, Stack* stack) {
    const size_t n = op.schema().arguments().size();
    const auto args = torch::jit::last(*stack, n);
    bool records = false;
    if (c10::GradMode::is_enabled()) {
      for (const auto& a : args) records = records || (a.isTensor() && a.toTensor().requires_grad());
    }
    if (!records) return op.redispatchBoxed(keyset & c10::after_autograd_keyset, stack);
    py::gil_scoped_acquire gil;
    py::tuple values = python_arguments(args, 1);
    values[0] = py::cast(keyset);
    push_result(op, stack, n, call(recording_, values));
  }

 private:
  PyObject* recording_;  // the op's Python Autograd kernel: recording(keyset, *args)
};

// Drops the dispatcher's warning that a kernel overrides one registered before: these are meant to override the
// op's Python kernels for the same keys. Any other warning passes on.
class OverrideWarningFilter final : public c10::WarningHandler {
 public:
  explicit OverrideWarningFilter(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("Overriding a previously registered kernel") == std::string::npos) next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};


template <class Kernel>
torch::CppFunction kernel_function(std::unique_ptr<Kernel> kernel) {
  return torch::CppFunction::makeFromBoxedKernel(c10::BoxedKernel::makeFromFunctor(std::move(kernel)));
}

// Registers the op's C++ kernels: CallKernel for CPU and MPS, and, for an op with a backward, AutogradKernel for
// AutogradCPU and AutogradMPS (other autograd keys keep the Python Autograd kernel).
void install(const std::string& name, py::object run, py::object learn, py::object recording) {
  // Kept for the life of the process, as the registrations they own are.
  auto* library = new torch::Library(torch::Library::IMPL, "mpskernels", std::nullopt, __FILE__, __LINE__);
  OverrideWarningFilter filter(c10::WarningUtils::get_warning_handler());
  c10::WarningUtils::WarningHandlerGuard guard(&filter);
  for (auto key : {c10::DispatchKey::CPU, c10::DispatchKey::MPS}) {
    auto kernel = std::make_unique<CallKernel>(run.inc_ref().ptr(), learn.inc_ref().ptr());
    library->impl(name.c_str(), torch::dispatch(key, kernel_function(std::move(kernel))));
  }
  if (recording.is_none()) return;
  for (auto key : {c10::DispatchKey::AutogradCPU, c10::DispatchKey::AutogradMPS}) {
    auto kernel = std::make_unique<AutogradKernel>(recording.inc_ref().ptr());
    library->impl(name.c_str(), torch::dispatch(key, kernel_function(std::move(kernel))));
  }
}

}  // namespace

void bind_op_kernels(py::module_& m) {
  m.def("install", &install, "Registers an op's C++ kernels (CPU, MPS and, given its Python Autograd kernel, "
        "AutogradCPU and AutogradMPS).", py::arg("name"), py::arg("run"), py::arg("learn"), py::arg("recording"));
  m.def("clear", [] {
    for (auto* kernel : CallKernel::all()) kernel->clear();
  }, "Forgets every op's repeated-call entries.");
  m.def("repeated_calls", [] { return repeated_calls.load(); }, "Calls served from an entry so far.");
}
