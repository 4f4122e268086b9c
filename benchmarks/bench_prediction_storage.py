#!/usr/bin/env python
"""Storage of SGDet predictions: the compact format (version 2, CRC-32 per record) against HDF5 with fletcher32.

    python benchmarks/bench_prediction_storage.py --num-images 2000   # then x 26,446 / 2,000 for the VG150 test split

The images are those of benchmarks/bench_eval.py (80 boxes, 6,320 pairs, 51 predicates); what is stored per image is
exactly what ``PredictionFileWriter`` keeps (ranking done once, before any timing). Timed: writing the records
(compact: the writer's own ``_write_record``; HDF5: resizable chunked datasets, one per array, appended 1,000 images
at a time, an index of per-image lengths; fletcher32 on every dataset, optionally gzip level 4 + shuffle) and reading
them back image by image (the raw arrays of each image; compact: ``PredictionFileReader``'s block and array reads,
CRCs checked; HDF5: blocks of 1,000 images, fletcher32 verified by the library).
"""
import argparse
import os
import tempfile
import time

import numpy as np


from bench_eval import NUM_PREDICATES, make_image
from sgg.evaluation import PredictionFileWriter, read_prediction_file

BLOCK = 1000  # images per HDF5 append / read


def collect_records(num_images: int, path: str):
    """(header, arrays) of every image as the compact writer stores them."""
    rng = np.random.default_rng(0)
    records = []
    writer = PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": NUM_PREDICATES})
    write_record = writer._write_record

    def capture(header, arrays):
        records.append(({k: v for k, v in header.items() if k != "arrays"}, {k: v.copy() for k, v in arrays.items()}))
        write_record(header, arrays)

    writer._write_record = capture
    for image_id in range(num_images):
        writer.add(image_id, make_image(rng)[1])
    writer.close()
    return records


def write_compact(path: str, records) -> None:
    with PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": NUM_PREDICATES}) as writer:
        for header, arrays in records:
            writer._write_record(dict(header), arrays)
            writer.num_images += 1


def read_compact(path: str) -> int:
    """The checked raw arrays of every image (the same work as ``read_hdf5``; building the records is not timed)."""
    reader = read_prediction_file(path)
    count = 0
    with open(path, "rb") as f:
        reader._read_meta(f)
        while not (header := reader._read_block(f, "record")).get("end"):
            count += len(reader._read_arrays(f, header)) > 0
    return count


def write_hdf5(path: str, records, gzip: bool) -> None:
    import h5py

    names = list(records[0][1])
    extra = dict(compression="gzip", compression_opts=4, shuffle=True) if gzip else {}
    with h5py.File(path, "w") as f:
        datasets = {}
        for name in names:
            a = records[0][1][name]
            row_bytes = max(1, a[:1].nbytes)
            datasets[name] = f.create_dataset(name, shape=(0,) + a.shape[1:], maxshape=(None,) + a.shape[1:],
                                              dtype=a.dtype, chunks=(max(1, 65536 // row_bytes),) + a.shape[1:],
                                              fletcher32=True, **extra)
        index = f.create_dataset("index", shape=(0, 2 + len(names)), maxshape=(None, 2 + len(names)), dtype="i8",
                                 chunks=(1024, 2 + len(names)), fletcher32=True)
        for start in range(0, len(records), BLOCK):
            block = records[start:start + BLOCK]
            rows = np.array([[h["image_id"], h["graph_count"]] + [len(a[n]) for n in names] for h, a in block])
            for name in names:
                values = np.concatenate([a[name] for _, a in block])
                d = datasets[name]
                d.resize(d.shape[0] + len(values), axis=0)
                d[-len(values):] = values
            index.resize(index.shape[0] + len(rows), axis=0)
            index[-len(rows):] = rows


def read_hdf5(path: str, names) -> int:
    import h5py

    count = 0
    with h5py.File(path, "r") as f:
        index = f["index"][:]
        bounds = {n: np.concatenate([[0], np.cumsum(index[:, 2 + i])]) for i, n in enumerate(names)}
        for start in range(0, len(index), BLOCK):
            stop = min(len(index), start + BLOCK)
            blocks = {n: f[n][bounds[n][start]:bounds[n][stop]] for n in names}
            for i in range(start, stop):
                image = {n: blocks[n][bounds[n][i] - bounds[n][start]:bounds[n][i + 1] - bounds[n][start]]
                         for n in names}
                count += len(image) > 0
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=2000)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="bench_storage_")
    records = collect_records(args.num_images, os.path.join(folder, "ranked.sgg"))
    names = list(records[0][1])
    scale = 26446 / args.num_images
    cases = [("compact v2 (CRC-32)", "c.sgg", lambda p: write_compact(p, records), read_compact),
             ("HDF5 fletcher32", "h.h5", lambda p: write_hdf5(p, records, False), lambda p: read_hdf5(p, names)),
             ("HDF5 fletcher32 + gzip 4", "hz.h5", lambda p: write_hdf5(p, records, True),
              lambda p: read_hdf5(p, names))]
    print(f"{args.num_images} images; last three columns scaled x{scale:.2f} to 26,446 images")
    for label, name, write, read in cases:
        path = os.path.join(folder, name)
        t0 = time.perf_counter()
        write(path)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert read(path) == args.num_images
        t_read = time.perf_counter() - t0
        size = os.path.getsize(path)
        print(f"{label:26s} {size / 2**20:7.1f} MiB ({size / args.num_images / 1024:5.2f} KiB/image)  "
              f"write {t_write:5.2f} s  read {t_read:5.2f} s  |  {size * scale / 2**20:5.0f} MiB  "
              f"write {t_write * scale:5.1f} s  read {t_read * scale:5.1f} s", flush=True)
        os.remove(path)
    os.remove(os.path.join(folder, "ranked.sgg"))
    os.rmdir(folder)


if __name__ == "__main__":
    main()
