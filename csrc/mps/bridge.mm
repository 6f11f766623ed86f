// The Mac-only layer: encode one Metal dispatch on PyTorch's current MPS stream.
//
// Everything above this file is shared with the emulator: Python hands over specialised MSL source (function
// constants already folded in), its hash, the kernel's host name, the [[buffer(i)]] arguments in order (tensors
// or packed scalar bytes), the grid and threadgroup sizes and threadgroup memory lengths.
//
// The encoding follows PyTorch's own MPS extension test:
// - all encoding happens inside dispatch_sync on the stream's serial queue;
// - on the stream's shared command encoder: never a new encoder on PyTorch's command buffer, never endEncoding,
//   never commit (PyTorch commits lazily; opening our own encoder aborts when its coalesced encoder is open);
// - a tensor binds as its storage's MTLBuffer (the data pointer *is* the id<MTLBuffer> on MPS) at byte offset
//   storage_offset * element_size.
// Libraries are compiled once per source hash and pipeline states once per (hash, kernel), under a mutex.

#include <torch/extension.h>

#include <ATen/mps/MPSDevice.h>
#include <ATen/mps/MPSStream.h>

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

std::mutex cache_mutex;
std::unordered_map<std::string, id<MTLLibrary>> libraries;               // by source hash
std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines;  // by hash + "/" + kernel

id<MTLComputePipelineState> pipeline_for(const std::string& source, const std::string& source_hash,
                                         const std::string& kernel) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  const std::string key = source_hash + "/" + kernel;
  auto found = pipelines.find(key);
  if (found != pipelines.end()) return found->second;

  id<MTLDevice> device = at::mps::MPSDevice::getInstance()->device();
  id<MTLLibrary> library = nil;
  auto lib_it = libraries.find(source_hash);
  if (lib_it != libraries.end()) {
    library = lib_it->second;
  } else {
    NSError* error = nil;
    MTLCompileOptions* options = [MTLCompileOptions new];
    library = [device newLibraryWithSource:[NSString stringWithUTF8String:source.c_str()] options:options error:&error];
    TORCH_CHECK(library != nil, "mpskernels: Metal compilation failed for kernel '", kernel, "': ",
                error ? [[error localizedDescription] UTF8String] : "unknown error");
    libraries.emplace(source_hash, library);
  }
  id<MTLFunction> function = [library newFunctionWithName:[NSString stringWithUTF8String:kernel.c_str()]];
  TORCH_CHECK(function != nil, "mpskernels: kernel '", kernel, "' is not in its compiled library");
  NSError* error = nil;
  id<MTLComputePipelineState> pipeline = [device newComputePipelineStateWithFunction:function error:&error];
  TORCH_CHECK(pipeline != nil, "mpskernels: cannot create the pipeline of kernel '", kernel, "': ",
              error ? [[error localizedDescription] UTF8String] : "unknown error");
  pipelines.emplace(key, pipeline);
  return pipeline;
}

id<MTLBuffer> buffer_of(const at::Tensor& t) {
  // On MPS the storage's data pointer is the id<MTLBuffer> handle, not a memory address.
  return (__bridge id<MTLBuffer>)(t.storage().data());
}

void launch(const std::string& source, const std::string& source_hash, const std::string& kernel,
            const std::vector<py::object>& args, const std::vector<int64_t>& threads,
            const std::vector<int64_t>& group_size, const std::vector<std::pair<int64_t, int64_t>>& threadgroup_memory) {
  TORCH_CHECK(threads.size() == 3 && group_size.size() == 3, "mpskernels: kernel '", kernel,
              "': threads and group_size need 3 dimensions");
  // Unpack the Python arguments before leaving the GIL's protection: tensors, or scalar bytes.
  std::vector<at::Tensor> tensors(args.size());
  std::vector<std::string> bytes(args.size());
  std::vector<bool> is_tensor(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (THPVariable_Check(args[i].ptr())) {
      tensors[i] = args[i].cast<at::Tensor>();
      TORCH_CHECK(tensors[i].device().is_mps(), "mpskernels: kernel '", kernel, "': buffer(", i,
                  ") is on ", tensors[i].device(), ", not on MPS");
      is_tensor[i] = true;
    } else {
      bytes[i] = args[i].cast<std::string>();
      is_tensor[i] = false;
    }
  }
  id<MTLComputePipelineState> pipeline = pipeline_for(source, source_hash, kernel);
  const int64_t group_threads = group_size[0] * group_size[1] * group_size[2];
  TORCH_CHECK(group_threads > 0 && group_threads <= (int64_t)pipeline.maxTotalThreadsPerThreadgroup,
              "mpskernels: kernel '", kernel, "': a threadgroup of ", group_threads,
              " threads exceeds the pipeline's limit of ", (int64_t)pipeline.maxTotalThreadsPerThreadgroup);

  at::mps::MPSStream* stream = at::mps::getCurrentMPSStream();
  __block std::exception_ptr failure;  // written inside the block
  dispatch_sync(stream->queue(), ^() {
    @autoreleasepool {
      try {
        id<MTLComputeCommandEncoder> encoder = stream->commandEncoder();
        [encoder setComputePipelineState:pipeline];
        for (size_t i = 0; i < args.size(); ++i) {
          if (is_tensor[i]) {
            const at::Tensor& t = tensors[i];
            [encoder setBuffer:buffer_of(t) offset:t.storage_offset() * t.element_size() atIndex:i];
          } else {
            [encoder setBytes:bytes[i].data() length:bytes[i].size() atIndex:i];
          }
        }
        for (const auto& [index, length] : threadgroup_memory) {
          [encoder setThreadgroupMemoryLength:length atIndex:index];
        }
        [encoder dispatchThreads:MTLSizeMake(threads[0], threads[1], threads[2])
            threadsPerThreadgroup:MTLSizeMake(group_size[0], group_size[1], group_size[2])];
      } catch (...) {
        failure = std::current_exception();
      }
    }
  });
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mpskernels' Objective-C++ bridge: encode Metal dispatches on PyTorch's MPS stream";
  m.def("launch", &launch, "Encode one dispatch of `kernel` from specialised MSL `source` on the current MPS stream",
        py::arg("source"), py::arg("source_hash"), py::arg("kernel"), py::arg("args"), py::arg("threads"),
        py::arg("group_size"), py::arg("threadgroup_memory"));
}
