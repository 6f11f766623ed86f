// The Mac-only layer: encode the Metal dispatches of one op call on PyTorch's current MPS stream.
//
// Everything above this file is shared with the emulator: Python hands over specialised MSL source (function
// constants already folded in), its hash and, per dispatch in launch order, the kernel's host name, the
// [[buffer(i)]] arguments in order (tensors or packed scalar bytes), the grid and threadgroup sizes and threadgroup
// memory lengths. A plan of several dispatches (e.g. split-KV attention: partial results, then their merge) is
// encoded in one go on one encoder, with a buffer memory barrier between consecutive dispatches, so each dispatch
// sees every write of the ones before it whatever dispatch type the encoder was opened with.
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
    // Metal compiles with fast math on by default (no NaN/inf guarantees, reassociation); the kernels rely on -inf
    // masks, NaN for fully masked rows and exact fp32 accumulation order, and torch.mps.compile_shader (the
    // metal-jit backend) turns it off too, so both backends compute the same thing.
    options.fastMathEnabled = NO;
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

// One dispatch with its Python arguments unpacked (done while the GIL protects them).
struct Dispatch {
  std::string kernel;
  std::vector<at::Tensor> tensors;
  std::vector<std::string> bytes;
  std::vector<bool> is_tensor;
  std::vector<int64_t> threads;
  std::vector<int64_t> group_size;
  std::vector<std::pair<int64_t, int64_t>> threadgroup_memory;
  id<MTLComputePipelineState> pipeline = nil;
};

Dispatch unpack(const std::string& source, const std::string& source_hash, const py::tuple& item) {
  TORCH_CHECK(item.size() == 5, "mpskernels: a dispatch is (kernel, args, threads, group_size, threadgroup_memory)");
  Dispatch d;
  d.kernel = item[0].cast<std::string>();
  const auto args = item[1].cast<std::vector<py::object>>();
  d.threads = item[2].cast<std::vector<int64_t>>();
  d.group_size = item[3].cast<std::vector<int64_t>>();
  d.threadgroup_memory = item[4].cast<std::vector<std::pair<int64_t, int64_t>>>();
  TORCH_CHECK(d.threads.size() == 3 && d.group_size.size() == 3, "mpskernels: kernel '", d.kernel,
              "': threads and group_size need 3 dimensions");
  d.tensors.resize(args.size());
  d.bytes.resize(args.size());
  d.is_tensor.resize(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (THPVariable_Check(args[i].ptr())) {
      d.tensors[i] = args[i].cast<at::Tensor>();
      TORCH_CHECK(d.tensors[i].device().is_mps(), "mpskernels: kernel '", d.kernel, "': buffer(", i,
                  ") is on ", d.tensors[i].device(), ", not on MPS");
      d.is_tensor[i] = true;
    } else {
      d.bytes[i] = args[i].cast<std::string>();
      d.is_tensor[i] = false;
    }
  }
  d.pipeline = pipeline_for(source, source_hash, d.kernel);
  const int64_t group_threads = d.group_size[0] * d.group_size[1] * d.group_size[2];
  TORCH_CHECK(group_threads > 0 && group_threads <= (int64_t)d.pipeline.maxTotalThreadsPerThreadgroup,
              "mpskernels: kernel '", d.kernel, "': a threadgroup of ", group_threads,
              " threads exceeds the pipeline's limit of ", (int64_t)d.pipeline.maxTotalThreadsPerThreadgroup);
  return d;
}

void encode(id<MTLComputeCommandEncoder> encoder, const Dispatch& d) {
  [encoder setComputePipelineState:d.pipeline];
  for (size_t i = 0; i < d.is_tensor.size(); ++i) {
    if (d.is_tensor[i]) {
      const at::Tensor& t = d.tensors[i];
      [encoder setBuffer:buffer_of(t) offset:t.storage_offset() * t.element_size() atIndex:i];
    } else {
      [encoder setBytes:d.bytes[i].data() length:d.bytes[i].size() atIndex:i];
    }
  }
  for (const auto& [index, length] : d.threadgroup_memory) {
    [encoder setThreadgroupMemoryLength:length atIndex:index];
  }
  [encoder dispatchThreads:MTLSizeMake(d.threads[0], d.threads[1], d.threads[2])
      threadsPerThreadgroup:MTLSizeMake(d.group_size[0], d.group_size[1], d.group_size[2])];
}

void launch(const std::string& source, const std::string& source_hash, const std::vector<py::tuple>& items) {
  std::vector<Dispatch> dispatches;
  dispatches.reserve(items.size());
  for (const auto& item : items) {
    dispatches.push_back(unpack(source, source_hash, item));
  }

  at::mps::MPSStream* stream = at::mps::getCurrentMPSStream();
  __block std::exception_ptr failure;  // written inside the block
  const std::vector<Dispatch>* all = &dispatches;
  dispatch_sync(stream->queue(), ^() {
    @autoreleasepool {
      try {
        id<MTLComputeCommandEncoder> encoder = stream->commandEncoder();
        for (size_t i = 0; i < all->size(); ++i) {
          if (i > 0) {
            // The next dispatch reads what this one wrote (scratch buffers): make those writes visible.
            [encoder memoryBarrierWithScope:MTLBarrierScopeBuffers];
          }
          encode(encoder, (*all)[i]);
        }
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
  m.def("launch", &launch,
        "Encode dispatches (kernel, args, threads, group_size, threadgroup_memory) of specialised MSL `source`, in "
        "order, on the current MPS stream",
        py::arg("source"), py::arg("source_hash"), py::arg("dispatches"));
}
