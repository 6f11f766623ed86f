// Stand-in for <MetalPerformanceShadersGraph/MetalPerformanceShadersGraph.h>: what PyTorch's MPSStream.h names (see
// ../README.md).
#pragma once

#import <MetalPerformanceShaders/MetalPerformanceShaders.h>

@interface MPSGraph : NSObject
@end

@interface MPSGraphExecutionDescriptor : NSObject
@end

@interface MPSGraphCompilationDescriptor : NSObject
@end
