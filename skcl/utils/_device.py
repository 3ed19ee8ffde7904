"""The device a stream lives on, and the refusal of another one mid-stream."""

import torch

__all__ = ["check_stream_device"]


def check_stream_device(estimator):
    """Refuse a ``device`` changed since the stream started (it applies at ``fit``).

    The module, the optimizer's state and the strategies' tensors stay on the
    device the stream started on; a call that sent the month (or the rows to
    predict) to another one would compute on two devices. The stream's device
    is where the module's tensors are.
    """
    module = estimator.__dict__.get("module_")
    if not isinstance(module, torch.nn.Module):
        return
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    if tensor is None or estimator.device is None:
        return
    wanted = _normalized(torch.device(estimator.device))
    if wanted != _normalized(tensor.device):
        raise ValueError(
            f"device={estimator.device!r} was set after "
            f"{estimator.__dict__.get('n_months_seen_', 0)} "
            f"months trained on {str(tensor.device)!r}, where the module, optimizer and "
            "strategy state live; the device is read when a stream starts: set "
            f"device={str(tensor.device)!r} back to continue the stream, or call fit "
            f"to start over on {str(wanted)!r}"
        )


def _normalized(device):
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device
