"""mpskernels: faster PyTorch inference on Apple GPUs with Metal kernels, tested everywhere through an MSL emulator."""

__version__ = "0.1.0"
