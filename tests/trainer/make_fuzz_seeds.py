# Writes the fuzz seed corpora and regression inputs for train_llama's readers
# (tests/fuzz/{corpus,regressions}/{tokens,checkpoint}); their bytes are committed, this
# script says how they were made. The checkpoint writer here is independent of
# checkpoint.hpp's, so the corpus also pins the documented formats 2 and 3.
#   python3 tests/trainer/make_fuzz_seeds.py tests/fuzz
import os, struct, sys

root = sys.argv[1]

def put(kind, group, name, data):
    d = os.path.join(root, group, kind)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 64 * 1024
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- tokens: first byte picks the name/dtype (0 .npy, 1 raw u16, 2 raw u32, 3 raw i32) and,
# with bit 7 set, vocab 256 instead of 50304 (tests/fuzz/fuzz_tokens.cpp).
def npy(descr, shape, payload, major=1, fortran="False", extra=""):
    dims = ", ".join(str(x) for x in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), %s}" % (descr, fortran, dims, extra)
    pre = 10 if major == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header.encode() + payload

ids = [(i * 37) % 256 for i in range(64)]
u2 = struct.pack("<64H", *ids)
i4 = struct.pack("<64i", *ids)
put("tokens", "corpus", "npy_v1_u2", b"\x80" + npy("<u2", (64,), u2))
put("tokens", "corpus", "npy_v1_i4", b"\x80" + npy("<i4", (64,), i4))
put("tokens", "corpus", "npy_v2_u4", b"\x00" + npy("<u4", (64,), i4, major=2))
put("tokens", "corpus", "npy_v3_u2", b"\x00" + npy("<u2", (64,), u2, major=3))
put("tokens", "corpus", "raw_u16", b"\x81" + u2)
put("tokens", "corpus", "raw_u32", b"\x82" + i4)
put("tokens", "corpus", "raw_i32", b"\x83" + i4)
put("tokens", "corpus", "npy_2d", b"\x80" + npy("<u2", (8, 8), u2))
put("tokens", "corpus", "npy_fortran", b"\x80" + npy("<u2", (64,), u2, fortran="True"))
put("tokens", "corpus", "npy_i8", b"\x80" + npy("<i8", (32,), i4))
put("tokens", "corpus", "npy_truncated", (b"\x80" + npy("<u2", (64,), u2))[:-7])
put("tokens", "corpus", "out_of_vocab", b"\x81" + struct.pack("<3H", 1, 2, 300))
# Inputs the previous reader got wrong: a garbage header that merely contains '<u2' was
# accepted, and a 2-D or mis-sized shape was never checked.
garbage = b"'<u2' is somewhere in here" + b" " * 91 + b"\n"  # 118 bytes, as a real header's length
put("tokens", "regressions", "garbage_header_with_u2", b"\x80" + b"\x93NUMPY\x01\x00" + struct.pack("<H", len(garbage)) + garbage + u2)
put("tokens", "regressions", "shape_larger_than_data", b"\x80" + npy("<u2", (65,), u2))
put("tokens", "regressions", "header_length_past_end", b"\x80" + b"\x93NUMPY\x01\x00\xff\xff{'descr'")

# ---- checkpoints, format 2, for fuzz_checkpoint.cpp's model: 1 layer, hidden 4, 1 head of 4,
# ffn 8, vocab 8, tied embeddings: 204 parameters, seed 1.
def fnv1a64(b):
    h = 14695981039346656037
    for x in b:
        h = ((h ^ x) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h

def checkpoint(step=3, total=204, layers=1, hidden=4, heads=1, kv=1, ffn=8, vocab=8, seed=1):
    head = b"TPLLCKPT" + struct.pack("<II", 2, 88) + struct.pack("<9q", step, total, layers, hidden, heads, kv, ffn, vocab, seed)
    payload = struct.pack("<%df" % (3 * total), *[(i % 17) * 0.125 - 1.0 for i in range(3 * total)])
    body = head + payload
    return body + struct.pack("<Q", fnv1a64(body))

good = checkpoint()
assert len(good) == 2544
put("checkpoint", "corpus", "valid", good)
put("checkpoint", "corpus", "other_seed", checkpoint(seed=2))
put("checkpoint", "corpus", "other_model", checkpoint(total=204 - 8 * 4 + 16 * 4, vocab=16))
put("checkpoint", "corpus", "truncated_half", good[:1272])
put("checkpoint", "corpus", "truncated_header", good[:40])
put("checkpoint", "corpus", "padded", good + b"\0")
put("checkpoint", "corpus", "header_flip", good[:20] + bytes([good[20] ^ 1]) + good[21:])
put("checkpoint", "corpus", "format1", b"TPLLAMA1" + b"\0" * 72 + good[96:-8])
# Format 3: the header adds the part (tp, tensor rank, stage, model chunks) and is 120 bytes.
def checkpoint3(part=(1, 0, 0, 1), **kw):
    v2 = checkpoint(**kw)
    head = b"TPLLCKPT" + struct.pack("<II", 3, 120) + v2[16:88] + struct.pack("<4q", *part)
    body = head + v2[88:-8]
    return body + struct.pack("<Q", fnv1a64(body))
put("checkpoint", "corpus", "valid_format3", checkpoint3())
put("checkpoint", "corpus", "format3_other_part", checkpoint3(part=(2, 1, 0, 1)))
# The previous reader loaded a payload bit flip silently (no checksum) and sized nothing from
# the header; a total near 2^62 must not be allocated.
put("checkpoint", "regressions", "payload_flip", good[:1000] + bytes([good[1000] ^ 0x10]) + good[1001:])
huge = bytearray(good[:96] + b"\0" * 8)
huge[24:32] = struct.pack("<q", 1 << 62)
put("checkpoint", "regressions", "huge_total", bytes(huge))
