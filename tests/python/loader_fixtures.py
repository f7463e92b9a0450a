"""Model files for integration/test_loaders.py, made by the pinned venv's
own libraries, and the loaders that read them back.

    python loader_fixtures.py make OUTDIR TENSOR_MIB
        writes, deterministically (fixed seeds, no clock):
          model.safetensors  16 float32 tensors layers.N.weight of
                             TENSOR_MIB MiB each (1 GiB at 64), plus a
                             small int64 and float16 tensor
          tokenizer.json     a BPE tokenizer trained on generated text
          model.gguf         metadata of each value type and F32, F16
                             and Q8_0 tensors
          model.onnx         a two-layer MLP (MatMul, Add, Relu)
        and DONE last, so a folder without DONE is incomplete.
    python loader_fixtures.py compare KIND A B
        loads file A and file B with the loader for KIND (safetensors,
        tokenizer, gguf, onnx) and compares what they give: arrays, token
        ids, metadata, outputs.  Prints a JSON report; exits 1 when they
        differ.
"""
import json
import os
import sys

import numpy as np

LAYERS = 16
MIB = 1 << 20
TEXT = ("hubfs presents Hugging Face Hub repos as plain folders; "
        "bytes are fetched lazily into a local store. ")
SAMPLE = ["Hello, world! hubfs reads safetensors lazily.",
          "naïve café 日本語 tokens, numbers 12345 and symbols #@!",
          TEXT * 3]


def rng(seed):
    return np.random.default_rng(seed)


def make_safetensors(path, tensor_mib):
    from safetensors.numpy import save_file
    n = tensor_mib * MIB // 4
    cols = 1024
    tensors = {}
    for i in range(LAYERS):
        tensors["layers.%d.weight" % i] = rng(1000 + i).standard_normal(
            (n // cols, cols), dtype=np.float32)
    tensors["embed.positions"] = np.arange(4096, dtype=np.int64)
    tensors["norm.weight"] = rng(7).standard_normal(777).astype(np.float16)
    # One metadata key: safetensors writes a map of several in no fixed order.
    save_file(tensors, path, metadata={"fixture": "hubfs"})


def make_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    words = []
    r = rng(11)
    alphabet = list("abcdefghijklmnopqrstuvwxyzàéü")
    for _ in range(20000):
        words.append("".join(r.choice(alphabet, size=int(r.integers(2, 9)))))
    corpus = [TEXT] * 50 + [" ".join(words[i:i + 40])
                            for i in range(0, len(words), 40)]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.save(path)


def make_gguf(path):
    import gguf
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_name("hubfs-fixture")
    w.add_context_length(2048)
    w.add_uint32("hubfs.u32", 123456)
    w.add_int64("hubfs.i64", -(1 << 40))
    w.add_float32("hubfs.f32", 0.5)
    w.add_bool("hubfs.flag", True)
    w.add_string("hubfs.text", "naïve café 日本語")
    w.add_array("hubfs.ints", [1, 2, 3, 5, 8, 13])
    w.add_array("hubfs.words", ["alpha", "beta", "gamma"])
    w.add_tensor("tok_embd.weight",
                 rng(21).standard_normal((256, 64), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight",
                 rng(22).standard_normal((64, 64)).astype(np.float16))
    q = rng(23).standard_normal((32, 256), dtype=np.float32)
    w.add_tensor("blk.0.ffn_up.weight",
                 gguf.quants.quantize(q, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_onnx(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    r = rng(31)
    w1 = r.standard_normal((64, 128), dtype=np.float32)
    b1 = r.standard_normal(128, dtype=np.float32)
    w2 = r.standard_normal((128, 10), dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "hubfs_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, producer_name="hubfs-tests",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make(out, tensor_mib):
    os.makedirs(out, exist_ok=True)
    for name, fn in (("model.safetensors",
                      lambda p: make_safetensors(p, tensor_mib)),
                     ("tokenizer.json", make_tokenizer),
                     ("model.gguf", make_gguf), ("model.onnx", make_onnx)):
        tmp = os.path.join(out, name + ".tmp")
        fn(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(out, name))
    with open(os.path.join(out, "DONE"), "w") as f:
        f.write("ok\n")


# ---- compare ---------------------------------------------------------------

def compare_safetensors(a, b):
    from safetensors import safe_open
    name = "layers.%d.weight" % (LAYERS // 2)
    out = {}
    with safe_open(a, framework="numpy") as fa, \
            safe_open(b, framework="numpy") as fb:
        out["keys"] = sorted(fa.keys()) == sorted(fb.keys())
        out["metadata"] = fa.metadata() == fb.metadata()
        ta, tb = fa.get_tensor(name), fb.get_tensor(name)
    out["tensor"] = name
    out["shape"] = list(ta.shape)
    out["nbytes"] = int(ta.nbytes)
    out["equal"] = bool(np.array_equal(ta, tb)) and ta.dtype == tb.dtype
    out["nonzero"] = bool(np.count_nonzero(ta))
    return out["keys"] and out["metadata"] and out["equal"] and \
        out["nonzero"], out


def compare_tokenizer(a, b):
    from tokenizers import Tokenizer
    ta, tb = Tokenizer.from_file(a), Tokenizer.from_file(b)
    out = {"vocab": ta.get_vocab_size() == tb.get_vocab_size(), "texts": []}
    ok = out["vocab"] and ta.get_vocab_size() > 300
    for text in SAMPLE:
        ea, eb = ta.encode(text), tb.encode(text)
        same = ea.ids == eb.ids and ea.tokens == eb.tokens and \
            ta.decode(ea.ids) == tb.decode(eb.ids)
        out["texts"].append({"ids": len(ea.ids), "equal": same})
        ok = ok and same and len(ea.ids) > 0
    return ok, out


def gguf_field(f):
    return {"types": [int(t) for t in f.types], "value": f.contents()}


def compare_gguf(a, b):
    import gguf
    ra, rb = gguf.GGUFReader(a, "r"), gguf.GGUFReader(b, "r")
    fa = {k: gguf_field(v) for k, v in ra.fields.items()}
    fb = {k: gguf_field(v) for k, v in rb.fields.items()}
    out = {"fields": fa == fb, "nfields": len(fa),
           "text": fa.get("hubfs.text", {}).get("value"), "tensors": []}
    ok = out["fields"] and len(ra.tensors) == len(rb.tensors) == 3
    for ta, tb in zip(ra.tensors, rb.tensors):
        same = (ta.name == tb.name and ta.tensor_type == tb.tensor_type and
                list(ta.shape) == list(tb.shape) and
                np.array_equal(ta.data, tb.data))
        out["tensors"].append({"name": ta.name, "type": ta.tensor_type.name,
                               "equal": same})
        ok = ok and same
    return ok, out


def compare_onnx(a, b):
    import onnxruntime as ort
    x = rng(41).standard_normal((5, 64), dtype=np.float32)
    outs = []
    for path in (a, b):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs.append(sess.run(["y"], {"x": x})[0])
    equal = bool(np.array_equal(outs[0], outs[1]))
    return equal and outs[0].shape == (5, 10), {
        "shape": list(outs[0].shape), "equal": equal,
        "sum": float(outs[0].sum())}


COMPARE = {"safetensors": compare_safetensors, "tokenizer": compare_tokenizer,
           "gguf": compare_gguf, "onnx": compare_onnx}


def main():
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
        return 0
    if sys.argv[1] == "compare":
        ok, report = COMPARE[sys.argv[2]](sys.argv[3], sys.argv[4])
        report["ok"] = ok
        json.dump(report, sys.stdout, default=str)
        return 0 if ok else 1
    sys.exit("usage: loader_fixtures.py make OUTDIR MIB | compare KIND A B")


if __name__ == "__main__":
    sys.exit(main())
