# Writes the bad inputs the trainer_refuses_* tests give train_llama: token files with broken
# .npy headers, an empty file, a FIFO, a read-only-folder stand-in, and damaged checkpoints
# made from a real one (trained here for 2 steps).
#   python3 make_bad_inputs.py TRAIN_LLAMA DIR
import os, shutil, struct, subprocess, sys

exe, d = sys.argv[1], sys.argv[2]
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d)

def npy(header, payload):
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload

ids = struct.pack("<3000H", *[i % 200 for i in range(3000)])
files = {
    "garbage.npy": npy("'<u2' but no dict", ids),
    "shape2d.npy": npy("{'descr': '<u2', 'fortran_order': False, 'shape': (30, 100), }", ids),
    "fortran.npy": npy("{'descr': '<u2', 'fortran_order': True, 'shape': (3000,), }", ids),
    "int64.npy": npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1500,), }", ids),
    "short.npy": npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3001,), }", ids),
    "headerlen.npy": b"\x93NUMPY\x01\x00\xff\xff{'descr': '<u2'",
    "empty.u16": b"",
}
for name, data in files.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
os.mkfifo(os.path.join(d, "fifo.u16"))

common = ["--steps", "2", "--lbs", "2", "--seq", "32", "--corpus-bytes", "200000", "--eval-every", "1000",
          "--peak-flops", "1e11"]
ck = os.path.join(d, "ck.bin")
subprocess.run([exe] + common + ["--checkpoint", ck], check=True, stdout=subprocess.DEVNULL)
subprocess.run([exe] + common + ["--layers", "2", "--checkpoint", os.path.join(d, "ck_2layers.bin")], check=True,
               stdout=subprocess.DEVNULL)
good = open(ck, "rb").read()
damaged = {
    "ck_truncated.bin": good[: len(good) // 2],
    "ck_flipped.bin": good[:5000] + bytes([good[5000] ^ 0x04]) + good[5001:],
    "ck_padded.bin": good + b"\0" * 16,
}
for name, data in damaged.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
