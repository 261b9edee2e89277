# Writes a 1-D int32 .npy with one id outside a 256-token vocabulary (no NumPy needed).
import struct, sys
header = "{'descr': '<i4', 'fortran_order': False, 'shape': (3000,), }"
header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    ids = [i % 200 for i in range(3000)]
    ids[1234] = 300
    f.write(struct.pack("<3000i", *ids))
