"""Audio: carry a source's first audio track into a finished video, copied when the container can hold
its codec, else re-encoded to AAC, cut at the video's end and shifted to its first frame."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from .container import video_stream

MP4_AUDIO = {"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"}  # codecs mp4/mov carry as they are


def mux_audio(video: Path, audio_from: Path, out: Path, fmt: str, transcode: bool) -> bool:
    """Write ``video``'s video + ``audio_from``'s first audio track (cut at the video's end) to ``out``.

    The audio is copied when ``fmt`` can hold its codec and ``transcode`` is False, else re-encoded
    to AAC. Packets are interleaved by time. Returns False when ``audio_from`` has no audio.
    """
    with av.open(str(audio_from)) as src:
        if not src.streams.audio:
            return False
        a_in = src.streams.audio[0]
        # our frame 0 is the source's first video frame: shift the audio by the video's start time
        v_src = video_stream(src)
        offset = float(v_src.start_time * v_src.time_base) if v_src and v_src.start_time else 0.0
        opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(video)) as vid, av.open(str(out), mode="w", format=fmt, container_options=opts) as dst:
            v_in = vid.streams.video[0]
            v_out = dst.add_stream_from_template(v_in)
            end = float(v_in.duration * v_in.time_base) if v_in.duration else float("inf")
            if not transcode and (fmt == "matroska" or a_in.codec_context.name in MP4_AUDIO):
                a_out = dst.add_stream_from_template(a_in)
                audio = _copied_audio(src, a_in, offset)
            else:
                # by name: the encoder refuses unnamed layouts ("1 channels"); more than two are downmixed
                a_out = dst.add_stream("aac", rate=_aac_rate(a_in.rate), layout="mono" if a_in.channels == 1 else
                                       "stereo")
                audio = _transcoded_audio(src, a_in, a_out, offset)
            video_packets = (p for p in vid.demux(v_in) if p.dts is not None)
            v_pkt, a_pkt = next(video_packets, None), next(audio, None)
            while v_pkt is not None or a_pkt is not None:
                a_time = float(a_pkt.pts * a_pkt.time_base) if a_pkt is not None else float("inf")
                if a_time >= end:
                    a_pkt, a_time = None, float("inf")
                v_time = float(v_pkt.dts * v_pkt.time_base) if v_pkt is not None else float("inf")
                if v_pkt is not None and v_time <= a_time:
                    v_pkt.stream = v_out
                    dst.mux(v_pkt)
                    v_pkt = next(video_packets, None)
                elif a_pkt is not None:
                    a_pkt.stream = a_out
                    dst.mux(a_pkt)
                    a_pkt = next(audio, None)
    return True


def _aac_rate(rate: int) -> int:
    return rate if rate in av.Codec("aac", "w").audio_rates else 48000


def _copied_audio(src, a_in, offset: float) -> Iterator[av.Packet]:
    shift = round(offset / a_in.time_base)
    for pkt in src.demux(a_in):
        if pkt.dts is None or pkt.pts is None:
            continue
        if shift:  # the source's video starts later than its audio: drop what comes before it
            pkt.pts, pkt.dts = pkt.pts - shift, pkt.dts - shift
            if pkt.pts + (pkt.duration or 0) <= 0:
                continue
        yield pkt  # (with no shift, negative pts such as AAC priming stay: the muxer writes an edit list)


def _transcoded_audio(src, a_in, a_out, offset: float) -> Iterator[av.Packet]:
    rate = a_out.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=a_out.layout, rate=rate, frame_size=1024)
    skip = round(offset * rate)  # samples before the first video frame
    done = 0
    frames = src.decode(a_in)
    for frame in _with_flush(frames):
        for out in resampler.resample(frame):
            if done + out.samples <= skip:
                done += out.samples
                continue
            out.pts, out.time_base = done - skip, Fraction(1, rate)
            done += out.samples
            yield from a_out.encode(out)
    yield from a_out.encode(None)


def _with_flush(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    yield from frames
    yield None
