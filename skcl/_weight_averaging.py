"""Weight averaging across months: the deployed weights as an average over months.

After month ``t`` the deployed weights are
``A_t = decay * A_{t-1} + (1 - decay) * W_t``, where ``W_t`` are the weights
the month's training ended at (``A_1 = W_1``). With ``"interpolate"`` month
``t + 1`` trains from ``A_t``; with ``"ema"`` it trains from ``W_t`` (kept in
``training_weights_``), so ``A`` is an exponential moving average of a
training path that averaging never disturbs. ``module_`` holds ``A_t``
between months, so prediction, ``save_weights``, snapshots and the
strategies' end-of-month hooks all see the deployed model.
"""

import torch

__all__ = ["average_month_weights", "begin_weight_averaging", "averaged_state"]


def begin_weight_averaging(net):
    """Prepare the month's training weights; return ``A_{t-1}`` (or ``None``).

    Called after the month's initialization. Loads ``training_weights_`` into
    ``module_`` under ``"ema"``, and drops them when averaging is switched
    off or to ``"interpolate"`` (training then continues from the deployed
    weights, as documented for a setting changed between months).
    """
    mode = net.weight_averaging
    raw = net.__dict__.get("training_weights_")
    if raw is not None and (mode != "ema" or not _same_shapes(raw, net.module_.state_dict())):
        # switched off or to "interpolate", or the head grew (new classes)
        # since: training continues from the deployed weights
        del net.__dict__["training_weights_"]
        raw = None
    if mode is None or not net.n_months_seen_:
        return None
    deployed = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
    if mode == "ema" and raw is not None:
        net.module_.load_state_dict(raw)
    return deployed


def average_month_weights(net, previous):
    """Put ``A_t`` into ``module_`` (and ``W_t`` into ``training_weights_`` for ema)."""
    mode = net.weight_averaging
    if mode is None:
        return
    trained = net.module_.state_dict()
    if mode == "ema":
        # a new dict each month: the rollback of a failed month restores the
        # previous one by reference
        net.training_weights_ = {k: v.detach().to("cpu", copy=True)
                                 for k, v in trained.items()}
    if previous is not None:
        net.module_.load_state_dict(averaged_state(previous, trained, net.averaging_decay))


def _same_shapes(state, other):
    return state.keys() == other.keys() and all(
        state[key].shape == other[key].shape for key in state)


def averaged_state(previous, current, decay):
    """``decay * previous + (1 - decay) * current`` for floating tensors.

    Other entries (integer buffers such as batch norm's step count) take
    ``current``'s value.
    """
    averaged = {}
    for key, value in current.items():
        before = previous[key].to(value.device)
        if torch.is_floating_point(value):
            averaged[key] = torch.lerp(value.detach(), before.to(value.dtype), float(decay))
        else:
            averaged[key] = value.detach().clone()
    return averaged
