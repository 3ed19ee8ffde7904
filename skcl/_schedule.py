"""A learning-rate schedule within each month, restarted every month.

skorch's ``LRScheduler`` callback continues its schedule over the whole history
(it is built with ``last_epoch=len(history) - 1``), so a schedule meant to run
once per month is kept here instead: one :class:`MonthSchedule` per month,
stepped before every training batch of the month's main epochs.
"""

import math

__all__ = ["MonthSchedule", "begin_month_schedule", "end_month_schedule",
           "next_scheduled_lr", "scheduled_lr", "start_scheduled_epoch"]


def scheduled_lr(base_lr, step, n_steps, schedule, warmup_fraction, final_fraction):
    """The rate of step ``step`` (0-based) of a month of ``n_steps`` steps.

    The first ``n_warmup = ceil(warmup_fraction * n_steps)`` steps rise
    linearly, ``base_lr * (step + 1) / n_warmup``; the rest follow
    ``schedule`` over their progress ``p`` from 0 (first step after warm-up)
    to 1 (the month's last step): ``"constant"`` keeps ``base_lr``,
    ``"linear"`` is ``base_lr * (1 - (1 - f) p)`` and ``"cosine"`` is
    ``base_lr * (f + (1 - f) (1 + cos(pi p)) / 2)``, with ``f`` =
    ``final_fraction``. Steps beyond ``n_steps`` keep the last step's rate.
    """
    n_warmup = math.ceil(warmup_fraction * n_steps)
    if step < n_warmup:
        return base_lr * (step + 1) / n_warmup
    if schedule == "constant":
        return base_lr
    span = max(n_steps - n_warmup - 1, 1)
    progress = min((step - n_warmup) / span, 1.0)
    if schedule == "linear":
        factor = 1.0 - (1.0 - final_fraction) * progress
    else:
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        factor = final_fraction + (1.0 - final_fraction) * cosine
    return base_lr * factor


class MonthSchedule:
    """The schedule of one month: its base rate, and the steps taken so far.

    The month's step count is fixed at its first epoch: batches of that epoch
    times the number of epochs still to run (an early stop simply ends the
    month before the schedule's end).
    """

    def __init__(self, base_lr, n_epochs, schedule, warmup_fraction, final_fraction):
        self.base_lr = base_lr
        self.n_epochs = n_epochs
        self.schedule = schedule
        self.warmup_fraction = warmup_fraction
        self.final_fraction = final_fraction
        self.n_steps = None
        self.step = 0

    def start_epoch(self, n_batches):
        if self.n_steps is None:
            self.n_steps = max(1, n_batches * self.n_epochs)

    def next_lr(self):
        lr = scheduled_lr(self.base_lr, self.step, self.n_steps or 1, self.schedule,
                          self.warmup_fraction, self.final_fraction)
        self.step += 1
        return lr


def begin_month_schedule(net, lr):
    """Start the month's schedule for ``net`` training at ``lr`` (none when constant).

    Kept on the month being trained (``net._month.schedule``), which the
    classifier drops when the month ends, whatever happened.
    """
    schedule = None
    if net.lr_schedule != "constant" or net.warmup_fraction > 0:
        schedule = MonthSchedule(lr, net.max_epochs, net.lr_schedule, net.warmup_fraction,
                                 net.final_lr_fraction)
    net._month.schedule = schedule


def start_scheduled_epoch(net, iterator):
    """Tell the month's schedule how many batches a training epoch has."""
    schedule = _current(net)
    if schedule is not None:
        schedule.start_epoch(len(iterator))


def next_scheduled_lr(net):
    """Set the next step's rate on the optimizer and record it in the history."""
    schedule = _current(net)
    if schedule is None:
        return
    lr = schedule.next_lr()
    for group in net.optimizer_.param_groups:
        group["lr"] = lr
    net.history.record_batch("lr", lr)


def end_month_schedule(net, lr):
    """End the month's schedule: the optimizer gets the month's rate ``lr`` back.

    Without a schedule nothing changes (an ``LRScheduler`` callback's rate stays).
    """
    if _current(net) is not None:
        net._month.schedule = None
        for group in net.optimizer_.param_groups:
            group["lr"] = lr


def _current(net):
    month = net.__dict__.get("_month")
    return None if month is None else month.schedule
