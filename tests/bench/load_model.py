"""load_model.py -- the model files of bench.py's load case, and the loads
it times.  Runs under the pinned test venv's python (numpy, safetensors,
gguf):

    python load_model.py make DIR
        writes DIR/model.safetensors (16 float32 tensors of 64 MiB and two
        small ones: just over 1 GiB) and DIR/model.gguf (16 F16 tensors of
        64 MiB, an F32 norm and a Q8_0 tensor, as llama.cpp's files hold),
        deterministically, then DIR/DONE.
    python load_model.py load KIND PATH
        loads PATH as users do and prints one JSON line: seconds (from
        before the open to the last byte touched), bytes of tensor data,
        tensors.  KIND:
          load_file  safetensors.numpy.load_file (every tensor, in memory)
          safe_open  safetensors safe_open(framework="numpy"), get_tensor of
                     every tensor in file order
          gguf       gguf.GGUFReader (np.memmap of the file, as llama.cpp
                     maps it), then every byte of every tensor read through
                     the mapping (an xor of its 64-bit words), as a first
                     pass of inference on the CPU touches them all
"""
import json
import os
import struct
import sys
import time

import gguf
import numpy as np
from safetensors import safe_open as st_open
from safetensors.numpy import load_file as st_load, save_file

MiB = 1 << 20
LAYERS = 16
TENSOR_MIB = 64


def rng(seed):
    return np.random.default_rng(seed)


def make_safetensors(path):
    cols = 4096
    rows = TENSOR_MIB * MiB // 4 // cols
    tensors = {}
    for i in range(LAYERS):
        tensors["model.layers.%02d.weight" % i] = rng(100 + i).standard_normal(
            (rows, cols), dtype=np.float32)
    tensors["model.norm.weight"] = rng(7).standard_normal(cols).astype(np.float16)
    tensors["model.positions"] = np.arange(8192, dtype=np.int64)
    save_file(tensors, path, metadata={"fixture": "hubfs-bench"})


def make_gguf(path):
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_name("hubfs-bench")
    w.add_context_length(4096)
    cols = 4096
    rows = TENSOR_MIB * MiB // 2 // cols
    for i in range(LAYERS):
        w.add_tensor("blk.%d.ffn_up.weight" % i,
                     rng(200 + i).standard_normal((rows, cols), dtype=np.float32)
                     .astype(np.float16))
    w.add_tensor("output_norm.weight", rng(8).standard_normal(cols, dtype=np.float32))
    q = rng(9).standard_normal((256, cols), dtype=np.float32)
    w.add_tensor("output.weight", gguf.quants.quantize(q, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make(out):
    os.makedirs(out, exist_ok=True)
    make_safetensors(os.path.join(out, "model.safetensors"))
    make_gguf(os.path.join(out, "model.gguf"))
    with open(os.path.join(out, "DONE"), "w") as f:
        f.write("ok\n")


def file_order(path):
    """The tensor names of a safetensors file, in the order of their data."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return sorted(header, key=lambda k: header[k]["data_offsets"][0])


def load_file(path):
    tensors = st_load(path)
    return sum(a.nbytes for a in tensors.values()), len(tensors)


def safe_open(path):
    nbytes = count = 0
    names = file_order(path)
    with st_open(path, framework="numpy") as f:
        for name in names:
            a = f.get_tensor(name)
            nbytes += a.nbytes
            count += 1
    return nbytes, count


def gguf_mmap(path):
    r = gguf.GGUFReader(path, "r")
    nbytes = 0
    check = 0
    for t in r.tensors:
        flat = np.asarray(t.data).reshape(-1).view(np.uint8)
        whole = flat.nbytes - flat.nbytes % 8
        check ^= int(np.bitwise_xor.reduce(flat[:whole].view(np.uint64)))
        check ^= int(np.bitwise_xor.reduce(flat[whole:], initial=0))
        nbytes += flat.nbytes
    return nbytes, len(r.tensors)


LOADS = {"load_file": load_file, "safe_open": safe_open, "gguf": gguf_mmap}


def main(argv):
    if len(argv) == 2 and argv[0] == "make":
        make(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "load" and argv[1] in LOADS:
        t0 = time.monotonic()
        nbytes, count = LOADS[argv[1]](argv[2])
        print(json.dumps({"seconds": time.monotonic() - t0, "bytes": nbytes,
                          "tensors": count}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
