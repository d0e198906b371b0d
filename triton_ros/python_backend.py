"""Runs a :mod:`triton_ros.ensemble_steps` step as a Triton python-backend model.

A model.py in config/model_repository is then only ``class TritonPythonModel(StepModel)``; the
step and its settings come from the model's config.pbtxt (``step_from_config``). Requests of a
dynamic batch are concatenated, run as one batch, and split back. Imports
``triton_python_backend_utils`` (present only inside the server's python-backend stub) lazily.
"""
import json

import numpy as np

from triton_ros.ensemble_steps import step_from_config


class StepModel:
    """The python backend's ``TritonPythonModel`` interface around one step."""

    def initialize(self, args):
        import triton_python_backend_utils as pb_utils
        self._pb = pb_utils
        config = json.loads(args["model_config"])
        try:
            self.step = step_from_config(config)
        except ValueError as exc:
            raise pb_utils.TritonModelException(f"{config.get('name')}: {exc}") from exc
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests):
        pb = self._pb
        batches = {name: [pb.get_input_tensor_by_name(r, name).as_numpy() for r in requests]
                   for name in self.input_names}
        sizes = [len(b) for b in batches[self.input_names[0]]]
        try:
            outputs = self.step({name: np.concatenate(parts) for name, parts in batches.items()})
        except Exception as exc:  # a defect, not bad input (steps mark bad items): say it
            error = pb.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            part = slice(start, start + size)
            start += size
            responses.append(pb.InferenceResponse(output_tensors=[
                pb.Tensor(name, np.ascontiguousarray(outputs[name][part]))
                for name in self.output_names]))
        return responses
