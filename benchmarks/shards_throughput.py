"""Write/read throughput of shards on this machine (one process)."""
import os, shutil, sys, tempfile, time
import numpy as np
from PIL import Image
sys.path.insert(0, ".")
from shards import encode_image, make_sample, write_shard, write_manifest, open_corpus, verify_corpus
from tests.shards.corpus_factory import make_record

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
rng = np.random.default_rng(0)
def crop(i):  # textured person-sized crop: low-res noise upsampled, like a blurry photo
    small = rng.integers(0, 256, (24, 12, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((64 + i % 64, 160 + i % 96), Image.Resampling.BICUBIC)
crops = [crop(i) for i in range(N)]
t = time.perf_counter(); jpgs = [encode_image(c) for c in crops]; t_enc = time.perf_counter() - t
samples = [make_sample(make_record(i), j) for i, j in enumerate(jpgs)]
d = tempfile.mkdtemp()
t = time.perf_counter(); write_shard(d, 0, samples); t_write = time.perf_counter() - t
write_manifest(d)
t = time.perf_counter(); n = sum(1 for _ in open_corpus(d)); t_read = time.perf_counter() - t
t = time.perf_counter(); n2 = sum(1 for _ in open_corpus(d, decode=False)); t_raw = time.perf_counter() - t
t = time.perf_counter(); assert verify_corpus(d) == []; t_ver = time.perf_counter() - t
size = os.path.getsize(os.path.join(d, "synthpedes-000000.tar"))
print(f"N={N} mean jpg {np.mean([len(j) for j in jpgs])/1024:.1f} KiB, tar {size/2**20:.1f} MiB")
print(f"encode_image      {N/t_enc:8.0f} img/s")
print(f"write_shard       {N/t_write:8.0f} samples/s ({size/2**20/t_write:.0f} MiB/s)")
print(f"encode+write      {N/(t_enc+t_write):8.0f} samples/s")
print(f"read decoded      {n/t_read:8.0f} samples/s; raw {n2/t_raw:.0f} samples/s")
print(f"verify            {N/t_ver:8.0f} samples/s")
shutil.rmtree(d)
