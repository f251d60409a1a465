"""The site simulator: plant model, Modbus device servers, faults on demand."""
