"""The edge runtime: exported students run with numpy and onnxruntime only.

Nothing under this package imports torch or Ray, so `pip install audiodistill[edge]` (numpy,
soundfile, pyyaml, onnxruntime, soxr) is enough to run an `audiodistill export` directory
on a device: `recognizer` streams a streaming student, `whisper` decodes a whisper-distil
student, `transcribe` runs either on files or a live PCM stream (`audiodistill transcribe
--model DIR`), and `audiodistill bench --backend onnx` measures either. The torch students
reuse the numpy front end (`features`) and the CTC decoding (`ctc`) from here, so both
runtimes compute the same features and the same text.
"""
