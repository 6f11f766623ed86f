"""The NVIDIA lane: shipped `.metal` kernels translated to CUDA by the MSL front end, compiled with NVRTC and run
on an NVIDIA GPU (numerics at large shapes, compute-sanitizer, bandwidth). Says nothing about Apple GPU speed."""

from .launch import CudaLaunch, Region, plan_launch, regions
from .source import cuda_source, nvrtc_options, shim_include_dir
from .translate import CudaEntry, CudaSource, to_cuda

__all__ = ["CudaEntry", "CudaLaunch", "CudaSource", "Region", "cuda_source", "nvrtc_options", "plan_launch",
           "regions", "shim_include_dir", "to_cuda"]
