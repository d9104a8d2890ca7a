"""Writers and readers of netlist file formats: netx HDF5, NIR, ONNX."""
