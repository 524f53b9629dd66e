import pytest

from extractor_service.config import ExtractorConfig
from search_service.config import SearchConfig
from serving.settings import load


def test_flag_beats_environment_beats_default():
    env = {"LANDMARK_EXTRACTOR_PORT": "6000", "LANDMARK_BACKEND": "sift"}
    assert load(ExtractorConfig, {}, env={}).port == 50051
    assert load(ExtractorConfig, {}, env=env).port == 6000
    assert load(ExtractorConfig, {"port": 7000}, env=env).port == 7000
    assert load(ExtractorConfig, {"port": None}, env=env).port == 6000


def test_environment_values_are_parsed_to_the_field_type():
    cfg = load(SearchConfig, {}, env={"LANDMARK_RATIO": "0.75", "LANDMARK_INDEX_DIR": "/x"})
    assert cfg.ratio == 0.75 and cfg.index_dir == "/x"


def test_a_list_of_numbers_from_the_environment():
    cfg = load(ExtractorConfig, {}, env={"LANDMARK_DELF_SCALES": "0.5, 1.0 2.0"})
    assert cfg.delf_scales == (0.5, 1.0, 2.0)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown setting"):
        load(SearchConfig, {"n_tress": 3}, env={})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LANDMARK_SEARCH_PORT": "abc"}, "LANDMARK_SEARCH_PORT='abc' is not a valid int"),
        ({"LANDMARK_SEARCH_PORT": "70000"}, "out of range"),
        ({"LANDMARK_SHORTLIST": "0"}, "shortlist must be positive"),
    ],
)
def test_bad_values_say_what_is_wrong(env, message):
    with pytest.raises(ValueError, match=message):
        load(SearchConfig, {}, env=env)


def test_config_is_frozen():
    cfg = SearchConfig()
    with pytest.raises(AttributeError):
        cfg.port = 1  # type: ignore[misc]


def test_flags_reach_the_config_and_beat_the_environment():
    from serving.launch import build_parser

    parser = build_parser(SearchConfig, "landmark-search", "")
    args = parser.parse_args(["--port", "0", "--min-inliers", "7", "--index-dir", "/x"])
    cfg = load(
        SearchConfig,
        vars(args),
        env={"LANDMARK_MIN_INLIERS": "20", "LANDMARK_SHORTLIST": "40"},
    )
    assert (cfg.port, cfg.min_inliers, cfg.index_dir, cfg.shortlist) == (0, 7, "/x", 40)
    parser = build_parser(ExtractorConfig, "landmark-extractor", "")
    args = parser.parse_args(["--backend", "delf", "--delf-model", "/m", "--delf-scales", "1,2"])
    cfg = load(ExtractorConfig, vars(args), env={})
    assert (cfg.backend, cfg.delf_model, cfg.port, cfg.delf_scales) == ("delf", "/m", 50051, (1, 2))


def test_a_bad_flag_value_names_the_flag():
    from serving.launch import build_parser

    parser = build_parser(SearchConfig, "landmark-search", "")
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "abc"])


def test_aliked_threads_share_the_cores_among_the_extractions_at_once(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert ExtractorConfig(max_concurrent=2).aliked_settings().threads == 4
    assert ExtractorConfig(max_concurrent=16).aliked_settings().threads == 1
    assert ExtractorConfig(aliked_threads=3).aliked_settings().threads == 3


def test_batching_settings_are_checked():
    assert ExtractorConfig(batch_size=4, max_concurrent=4).batch_size == 4
    with pytest.raises(ValueError, match="no batch could fill; raise max_concurrent"):
        ExtractorConfig(batch_size=8, max_concurrent=2)
    with pytest.raises(ValueError, match="needs the aliked backend, not sift"):
        ExtractorConfig(batch_size=2, backend="sift")
    with pytest.raises(ValueError, match="batch_delay_ms"):
        ExtractorConfig(batch_delay_ms=-1)
