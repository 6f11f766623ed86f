// The mpskernels_host extension: the repeated call's host work in C++ (src/mpskernels/cxx_host.py).
#include <torch/extension.h>

#include "host.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  bind_launch_key(m);
  bind_op_kernels(m);
}
