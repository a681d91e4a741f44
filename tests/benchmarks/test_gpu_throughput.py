"""benchmarks/gpu_throughput.py: its flag errors, a --quick CPU run of each section, and the projection."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))  # the scripts import their neighbours (bench_common) by name
gpu_throughput = importlib.import_module("gpu_throughput")


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One torch thread: on the shared 2-core machine, 2 threads under load run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sections", "predictor,nope"], "unknown section 'nope'"),
        (["--sections", ","], "none given"),
        (["--batch-sizes", "0"], "must be at least 1, got 0"),
        (["--batch-sizes", "64,-2"], "must be at least 1, got -2"),
        (["--images=0"], "must be at least 1, got 0"),
        (["--rounds=-1"], "must be at least 1, got -1"),
        (["--pretrain-steps", "0"], "must be at least 1, got 0"),
        (["--workers", "8,0"], "must be at least 1, got 0"),
        (["--mllm-batch-sizes", "4,0"], "must be at least 1, got 0"),
        (["--sections", "mllm"], "section mllm needs --mllm-model PATH"),
        (["--sections", "mllm_server"], "section mllm_server needs --mllm-server URL and --mllm-model NAME"),
        (["--mllm-concurrency", "8,0"], "must be at least 1, got 0"),
        (["--price-per-gpu-hour", "0"], "must be a positive number, got 0"),
        (["--startup-minutes=-1"], "must be a number >= 0, got -1"),
        (["--sections", "captioner"], "section captioner needs --captioner-model DIR"),
        (["--captioner-batch-sizes", "2,0"], "must be at least 1, got 0"),
    ],
)
def test_bad_flag_values_are_one_line_and_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gpu_throughput.main(["--device", "cpu", *flags]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"{gpu_throughput.PROG}: error: argument {flags[0].split('=')[0]}")
    assert message in line


def test_cuda_asked_without_cuda_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_throughput.main(["--quick"]) == 2  # --device cuda is the default
    assert "CUDA is not available" in _error_line(capsys)


def _quick(tmp_path: Path, section: str) -> dict:
    out = tmp_path / "result.json"
    assert gpu_throughput.main(["--device", "cpu", "--quick", "--sections", section, "--json-out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _check_projection(result: dict, rows: int) -> None:
    projection = result["projection"]
    assert projection["images"] == 4_800_000 and projection["workers"] == [8, 16]
    assert len(projection["rows"]) == rows
    for row in projection["rows"]:
        hours = row["hours"]
        assert hours["1"] == pytest.approx(4_800_000 / row["rate"] / 3600)
        if not row["what"].startswith("pre-training"):
            assert hours["8"] == pytest.approx(hours["1"] / 8) and hours["16"] == pytest.approx(hours["1"] / 16)


def test_quick_predictor_section_writes_positive_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _quick(tmp_path, "predictor")
    assert result["device"] == "cpu" and result["quick"] is True
    assert set(result) == {"device", "device_name", "torch", "threads", "quick", "sizes", "predictor", "projection"}
    rows = result["predictor"]
    # on the CPU the job uses no acceleration, so float32 is the one mode
    assert [(r["model"], r["mode"], r["batch_size"]) for r in rows] == [("demo", "fp32", 4), ("tiny", "fp32", 4)]
    for row in rows:
        assert row["images_per_s"] > 0 and row["images_per_s_with_decode"] > 0
    _check_projection(result, rows=2)
    printed = capsys.readouterr().out
    assert "predictor images/s at 256x128" in printed and "projection for 4,800,000 images" in printed


def test_quick_pretrain_section_writes_positive_rates(tmp_path: Path) -> None:
    result = _quick(tmp_path, "pretrain")
    pretrain = result["pretrain"]
    assert (pretrain["preset"], pretrain["precision"], pretrain["batch_size"]) == ("RN-tiny", "fp32", 4)
    assert pretrain["steps_per_s"] > 0
    assert pretrain["samples_per_s"] == pytest.approx(pretrain["steps_per_s"] * 4)
    _check_projection(result, rows=1)


@pytest.mark.slow
def test_quick_job_section_runs_the_synthesis_job(tmp_path: Path) -> None:
    """Four DirectRunner jobs (a warm-up and a round per predictor): 7-12 s here, more when the machine is busy."""
    result = _quick(tmp_path, "job")
    assert [row["predictor"] for row in result["job"]] == ["demo", "tiny"]
    for row in result["job"]:
        assert row["images"] == 10 and row["batch_size"] == 4 and row["images_per_s"] > 0
        stages = row["stages_images_per_s"]
        assert {"decode", "inference"} <= set(stages) and all(rate > 0 for rate in stages.values())
        assert row["bound"] == min(stages, key=stages.get)
    _check_projection(result, rows=2)


def test_accelerations_name_the_jobs_cuda_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpu_throughput.accelerations(torch.device("cpu")) == {"fp32": gpu_throughput.Acceleration()}
    for dtype, name in ((torch.bfloat16, "bf16+channels_last"), (torch.float16, "fp16+channels_last")):
        fast = gpu_throughput.Acceleration(dtype, channels_last=True)
        monkeypatch.setattr(gpu_throughput, "acceleration_for", lambda where, fast=fast: fast)
        assert gpu_throughput.accelerations(torch.device("cpu")) == {"fp32": gpu_throughput.Acceleration(), name: fast}


def test_projected_hours() -> None:
    assert gpu_throughput.projected_hours(4_800_000, 1000.0) == pytest.approx(4800 / 3600)
    assert gpu_throughput.projected_hours(4_800_000, 1000.0, 16) == pytest.approx(300 / 3600)
    assert gpu_throughput.projected_hours(7200, 2.0, 1) == pytest.approx(1.0)
    for rate, workers in ((0.0, 1), (-5.0, 1), (10.0, 0)):
        with pytest.raises(ValueError):
            gpu_throughput.projected_hours(100, rate, workers)


def test_projection_rows_per_section() -> None:
    results = {
        "job": [{"predictor": "resnet50", "images_per_s": 2000.0}],
        "predictor": [
            {"model": "resnet50", "mode": "fp32", "batch_size": 64, "images_per_s": 3000.0},
            {"model": "resnet50", "mode": "bf16+channels_last", "batch_size": 256, "images_per_s": 12000.0},
            {"model": "resnet50", "mode": "bf16+channels_last", "batch_size": 64, "images_per_s": 9000.0},
        ],
        "pretrain": {"preset": "RN50", "precision": "bf16", "batch_size": 128, "samples_per_s": 400.0},
    }
    rows = gpu_throughput.projection(results, 4_800_000, [8, 16])
    assert [row["rate"] for row in rows] == [2000.0, 12000.0, 400.0]  # the fastest predictor setting only
    job, forward, epoch = rows
    assert job["hours"] == pytest.approx({"1": 4800 / 2 / 3600, "8": 4800 / 16 / 3600, "16": 4800 / 32 / 3600})
    assert "bf16+channels_last batch 256" in forward["what"]
    assert epoch["hours"] == pytest.approx({"1": 4_800_000 / 400 / 3600})  # one GPU: no Dataflow workers
    assert gpu_throughput.projection({}, 4_800_000, [8]) == []


def test_job_rates_count_the_unaccounted_wall_time_as_other() -> None:
    stages = [("decode", 100, 50.0), ("inference", 100, 25.0)]  # 2 s + 4 s of a 10 s run
    assert gpu_throughput.job_rates(10.0, 100, stages) == {"decode": 50.0, "inference": 25.0, "other": 25.0}
    assert "other" not in gpu_throughput.job_rates(5.0, 100, stages)  # stages overlapping (several workers)


@pytest.mark.parametrize("hours, text", [(0.005, "18 s"), (0.5, "30.0 min"), (3.25, "3.25 h"), (72.0, "3.0 d")])
def test_format_hours(hours: float, text: str) -> None:
    assert gpu_throughput.format_hours(hours) == text


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def test_quick_mllm_section_times_the_caption_model_per_batch_size(tmp_path: Path, tiny_vlm: Path) -> None:
    out = tmp_path / "result.json"
    argv = ["--device", "cpu", "--quick", "--mllm-model", str(tiny_vlm), "--sections", "mllm", "--json-out", str(out)]
    assert gpu_throughput.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = result["mllm"]
    assert [(r["batch_size"], r["dtype"]) for r in rows] == [(1, "float32"), (2, "float32")]  # bf16 on CUDA only
    for row in rows:
        assert row["images_per_s"] > 0 and row["texts_per_s"] == pytest.approx(2 * row["images_per_s"])
    _check_projection(result, rows=1)
    fastest = max(rows, key=lambda r: r["images_per_s"])
    assert result["projection"]["rows"][0]["rate"] == fastest["images_per_s"]


def test_a_caption_model_that_does_not_load_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--device", "cpu", "--quick", "--mllm-model", str(tmp_path), "--sections", "mllm"]
    assert gpu_throughput.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot load the caption model" in err


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spac.neural_captioner.files import save_captioner
    from tests.spac.neural_captioner.tiny import tiny_captioner as build

    model = build()
    return save_captioner(model, model.tokenizer, tmp_path_factory.mktemp("captioner") / "tiny")


def test_quick_captioner_section_times_the_jobs_writer_per_batch_size(tmp_path: Path, tiny_captioner: Path) -> None:
    out = tmp_path / "result.json"
    argv = ["--device", "cpu", "--quick", "--captioner-model", str(tiny_captioner), "--json-out", str(out)]
    assert gpu_throughput.main([*argv, "--sections", "captioner"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = result["captioner"]
    assert [(r["mode"], r["batch_size"]) for r in rows] == [("fp32", 1), ("fp32", 2)]  # bf16 on CUDA only
    for row in rows:
        assert row["images_per_s"] > 0 and row["texts_per_s"] == pytest.approx(2 * row["images_per_s"])
        assert row["tokens_per_s"] > row["images_per_s"] and row["max_new_tokens"] == 8
    _check_projection(result, rows=1)
    fastest = max(rows, key=lambda r: r["images_per_s"])
    assert result["projection"]["rows"][0]["rate"] == fastest["images_per_s"]
    assert "neural captioner alone, tiny fp32" in result["projection"]["rows"][0]["what"]


def test_a_captioner_folder_that_does_not_load_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--device", "cpu", "--quick", "--captioner-model", str(tmp_path), "--sections", "captioner"]
    assert gpu_throughput.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a captioner directory" in err


def test_projected_cost_pays_every_worker_for_its_start_up_too() -> None:
    assert gpu_throughput.projected_cost(2.0, 8, 1.12, 0.1) == pytest.approx(8 * 2.1 * 1.12)
    results = {"mllm_server": [{"model": "Qwen/Qwen2-VL-2B-Instruct", "concurrency": 32, "images_per_s": 20.0}]}
    [row] = gpu_throughput.projection(results, 4_800_000, [8], price_per_gpu_hour=2.0, startup_minutes=12)
    assert "Qwen2-VL-2B-Instruct concurrency 32" in row["what"] and row["rate"] == 20.0
    assert row["hours"] == pytest.approx({"1": 4_800_000 / 20 / 3600, "8": 4_800_000 / 160 / 3600})
    assert row["cost_usd"] == pytest.approx(
        {"1": (row["hours"]["1"] + 0.2) * 2.0, "8": 8 * (row["hours"]["8"] + 0.2) * 2.0}
    )
    pretrain = {"pretrain": {"preset": "RN50", "precision": "bf16", "batch_size": 128, "samples_per_s": 400.0}}
    assert "cost_usd" not in gpu_throughput.projection(pretrain, 4_800_000, [8])[0]  # not a Dataflow job


def test_quick_mllm_server_section_times_the_jobs_client_per_concurrency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.spac.generation.fake_server import FakeChatServer, text_reply

    out = tmp_path / "result.json"
    with FakeChatServer(lambda _body: text_reply("A man in a red t-shirt walks by.")) as server:
        argv = ["--device", "cpu", "--quick", "--sections", "mllm_server", "--mllm-server", server.base_url]
        argv += ["--mllm-model", "tiny", "--workers", "4", "--price-per-gpu-hour", "2", "--json-out", str(out)]
        assert gpu_throughput.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = result["mllm_server"]
    assert [(r["concurrency"], r["model"], r["server"]) for r in rows] == [(c, "tiny", server.base_url) for c in (1, 4)]
    for row in rows:
        assert row["images_per_s"] > 0 and row["texts_per_s"] == pytest.approx(2 * row["images_per_s"])
    assert len(server.requests) == 2 * 2 * 4 * 2  # (warm-up + 1 round) x 2 concurrencies x 4 images x 2 texts
    [row] = result["projection"]["rows"]
    assert row["rate"] == max(r["images_per_s"] for r in rows)
    assert (result["projection"]["price_per_gpu_hour"], result["projection"]["startup_minutes"]) == (2.0, 6.0)
    assert row["cost_usd"]["4"] == pytest.approx(4 * (row["hours"]["4"] + 0.1) * 2.0)
    printed = capsys.readouterr().out
    assert "caption model behind a server" in printed and "x $2 per GPU-hour" in printed


def test_a_server_that_does_not_answer_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.pipelines.synthesis.test_caption_model import _free_port

    url = f"http://127.0.0.1:{_free_port()}/v1"
    argv = ["--device", "cpu", "--quick", "--sections", "mllm_server", "--mllm-server", url, "--mllm-model", "tiny"]
    assert gpu_throughput.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot reach the caption-model server at {url}" in err
