"""Speaker embeddings on the CPU from weights that ship inside a PyPI package (Resemblyzer).

Resemblyzer's wheel carries ``pretrained.pt``, a GE2E d-vector encoder (3-layer LSTM over
40-channel mel frames, 256-dim L2-normalised output). We load those weights into the same small
network written here and compute the mel frames with numpy, instead of importing the
``resemblyzer`` package: its import pulls librosa and webrtcvad (which needs ``pkg_resources``,
gone from current setuptools). The package is located with ``importlib.util.find_spec`` so its
``__init__`` never runs. Only torch is imported, lazily.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from shardsmith.speech.base import MissingExtra, TranscriberUnavailable

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms step
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s per partial embedding, as the encoder was trained
# The encoder reads linear mel power, so a quiet recording of a voice lands elsewhere in embedding
# space than a loud one. The encoder was trained on speech brought up to about -30 dBFS (mean
# power), and quiet windows are raised to that level before embedding. Loud windows are left as they
# are (raising only, never lowering, is how the encoder's own preprocessing behaves).
TARGET_DBFS = -30.0
WEIGHTS_ENV = "SHARDSMITH_SPEAKER_ENCODER"  # named in messages; read only by config.settings_from_env


def encoder_weights_path(configured: str | Path | None = None) -> Path:
    """``configured`` (``Settings.speech.speaker_weights``) when given, else Resemblyzer's bundled file."""
    if configured:
        return Path(configured).expanduser()
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):  # ValueError: a module entry without a spec (blocked import)
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(
            "speakers",
            "diarization on the CPU needs the Resemblyzer encoder weights (its pretrained.pt is used, the "
            f"package is not imported), or {WEIGHTS_ENV} set to that file",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise TranscriberUnavailable(f"{path} is missing from the resemblyzer package")
    return path


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(
        f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Triangular, area-normalised mel filters (the convention the encoder was trained with)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2 : N_MELS + 2] - mel_pts[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram: centred frames, periodic Hann window."""
    wav = np.asarray(wav, dtype=np.float32)
    padded = np.pad(wav, N_FFT // 2)
    n = 1 + max(0, (len(padded) - N_FFT) // HOP)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spec = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return (spec @ mel_filterbank().T).astype(np.float32)


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise a window's mean power to ``target_dbfs`` when it is quieter; louder windows stay as they are.

    Digital silence (all zeros) is returned unchanged: there is no level to raise.
    """
    wav = np.asarray(wav, dtype=np.float32)
    power = float(np.mean(np.square(wav, dtype=np.float64))) if wav.size else 0.0
    if power <= 0.0:
        return wav
    gain_db = target_dbfs - 10.0 * np.log10(power)
    if gain_db <= 0.0:
        return wav
    return (wav * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def missing_speakers_extra(weights: str | Path | None = None) -> MissingExtra | None:
    """Why the speaker encoder cannot run here (torch or its weights absent), or None when it can.

    Checked before a game is transcribed, so a game that needs diarization is set aside at once
    instead of after minutes of transcription.
    """
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return MissingExtra("speakers", f"diarization on the CPU needs torch ({exc})")
    try:
        path = encoder_weights_path(weights)
    except MissingExtra as exc:
        return exc
    if not path.is_file():
        return MissingExtra("speakers", f"speaker encoder weights {path} are missing")
    return None


class VoiceEmbedder:
    """d-vectors for short speech windows; one shared instance per process (see ``get_embedder``)."""

    def __init__(self, weights: str | Path | None = None):
        try:
            import torch
        except ImportError as exc:
            raise MissingExtra("speakers", "diarization on the CPU needs torch") from exc
        self._torch = torch
        self.weights = encoder_weights_path(weights)
        self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(str(self.weights), map_location="cpu", weights_only=True)
        state = state.get("model_state", state)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()
        self._lock = threading.Lock()

    def _forward(self, mels: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = []
        # oneDNN's LSTM spends seconds warming up on first use; the plain kernel is fast for one sequence
        with self._lock, torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
            for m in mels:  # variable lengths: one sequence at a time keeps it simple and exact
                _, (hidden, _) = self.lstm(torch.from_numpy(m[None]))
                e = torch.relu(self.linear(hidden[-1]))[0].numpy()
                out.append(e / max(float(np.linalg.norm(e)), 1e-9))
        return np.stack(out) if out else np.zeros((0, 256), np.float32)

    def _partials(self, wav: np.ndarray) -> list[np.ndarray]:
        frames = mel_frames(normalize_volume(wav))
        if len(frames) <= PARTIAL_FRAMES:
            return [frames]
        starts = list(range(0, len(frames) - PARTIAL_FRAMES + 1, PARTIAL_FRAMES // 2))
        if starts[-1] + PARTIAL_FRAMES < len(frames):
            starts.append(len(frames) - PARTIAL_FRAMES)
        return [frames[s : s + PARTIAL_FRAMES] for s in starts]

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """One L2-normalised embedding: the mean of 1.6 s partials (50 % overlap) over the window."""
        return self.embed_many([wav])[0]

    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        """Embeddings of many windows; full-length partials run as one batch (fast on the CPU)."""
        if not wavs:
            return np.zeros((0, 256), np.float32)
        parts = [self._partials(w) for w in wavs]
        flat = [(i, p) for i, ps in enumerate(parts) for p in ps]
        full = [k for k, (_, p) in enumerate(flat) if len(p) == PARTIAL_FRAMES]
        emb = np.zeros((len(flat), 256), np.float32)
        if full:
            emb[full] = self._forward_batch(np.stack([flat[k][1] for k in full]))
        for k, (_, p) in enumerate(flat):
            if len(p) != PARTIAL_FRAMES and len(p):
                emb[k] = self._forward([p])[0]
        out = np.zeros((len(wavs), 256), np.float32)
        for k, (i, _) in enumerate(flat):
            out[i] += emb[k]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def _forward_batch(self, mels: np.ndarray) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
            _, (hidden, _) = self.lstm(torch.from_numpy(np.ascontiguousarray(mels)))
            e = torch.relu(self.linear(hidden[-1])).numpy()
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)


_EMBEDDERS: dict[str, VoiceEmbedder] = {}
_EMBEDDER_LOCK = threading.Lock()


def get_embedder(weights: str | Path | None = None) -> VoiceEmbedder:
    """One shared embedder per weights file and process (``weights`` None: Resemblyzer's file)."""
    key = str(weights or "")
    with _EMBEDDER_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = VoiceEmbedder(weights)
        return _EMBEDDERS[key]
