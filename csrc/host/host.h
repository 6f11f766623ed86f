// The pieces of the mpskernels_host extension (src/mpskernels/cxx_host.py builds it at first use).
#pragma once

#include <pybind11/pybind11.h>

void bind_launch_key(pybind11::module_& m);  // launch_key.cpp: the Python kernels' launch cache key
void bind_op_kernels(pybind11::module_& m);  // op_kernels.cpp: the dispatcher's kernels for the repeated call
