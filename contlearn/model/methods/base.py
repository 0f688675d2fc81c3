"""What a parameter-efficient method is: a frozen config, the task modules it builds on a
backbone's sites, and how they attach (a hook per site).

A method never edits the backbone. :class:`~contlearn.model.adapted.AdaptedModel` wraps each site
a method uses once; with a task active, a site's wrapper calls that task's hook for it, if the
task has one, as ``hook(x, base)`` where ``base`` is the original sub-module, else runs
``base(x)`` alone. The ``layer`` site (a whole layer) calls ``hook(base, args, kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor, nn

Hook = Callable[["Tensor", "nn.Module"], "Tensor"]


class Sites(Protocol):
    """The backbone's sites, as a method sees them when it builds a task's modules."""

    hidden_size: int
    num_layers: int

    def base_modules(self, kind: str) -> Sequence[nn.Module]:
        """The original sub-module of kind ``kind`` in each layer, in layer order."""
        ...

    def sub_layer_sizes(self) -> tuple[int, int]:
        """(hidden size d, feed-forward inner size f)."""
        ...

    def projection(self, kind: str) -> tuple[str, slice | None]:
        """The site of projection ``kind`` and, where a family fuses it with others, its slice
        of that site's output."""
        ...


@dataclass
class MethodModules:
    """A task's modules for one method.

    parts: registered on the task in this order; their names prefix the saved state's keys.
    hooks: (site kind, layer index) -> the hook that site's wrapper calls for this task.
    """

    parts: dict[str, nn.Module] = field(default_factory=dict)
    hooks: dict[tuple[str, int], Hook] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered method.

    name: how runs and artifacts record it; config_cls: its frozen, validated config dataclass;
    site_kinds: the sites it may attach to (a backbone family must provide those a config
    uses: ``sites_used(config, sites)``, default all of them);
    build(config, sites): the task's modules; added_parameters(config, sites): how many
    parameters they add (the head not counted); tradeoff_lr: the learning rate its trade-off
    points train with when the grid gives none (None: the task's own).
    """

    name: str
    config_cls: type
    site_kinds: tuple[str, ...]
    build: Callable[[Any, Sites], MethodModules]
    added_parameters: Callable[[Any, Sites], int]
    summary: str
    sites_used: Callable[[Any, Sites], tuple[str, ...]] | None = None
    mixes: bool = True  # its hooks can serve rows of a mixed-task batch (hooks.MIXABLE)
    tradeoff_lr: float | None = None

    def needs(self, config: Any, sites: Sites) -> tuple[str, ...]:
        """The sites ``config`` attaches to on this backbone (all of ``site_kinds`` unless the
        method says, e.g. LoRA's targets, which a family may fuse into one projection)."""
        return self.site_kinds if self.sites_used is None else self.sites_used(config, sites)

    def config(self, values: Mapping[str, Any]) -> Any:
        """The method's config from recorded or configured values (validated); an unknown
        option is a :class:`ConfigError` naming the method's options."""
        known = [f.name for f in fields(self.config_cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            options = ", ".join(known) or "none"
            raise ConfigError(
                f"method {self.name!r} has no option {unknown[0]!r}; its options: {options}"
            )
        return self.config_cls(**values)

    def options(self) -> dict[str, Any]:
        """The method's options and their defaults."""
        return asdict(self.config_cls())
