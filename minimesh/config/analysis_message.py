"""One finding of `minimesh analyze`: a code, a name, a line — worded as `istioctl analyze` words it.

Istio's codes (IST0101, ...) keep Istio's name and level, so a learner
can look them up in Istio's docs. A few checks have no Istio code (Istio
does not look there, yet the mistake silently routes nothing); those carry
minimesh's own code, MM0xxx, and say that istioctl would not report them.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = {"IST0101": "Error", "IST0109": "Error", "IST0127": "Warning", "IST0130": "Warning",  # Istio's
          "IST0131": "Info", "IST0132": "Warning", "IST0161": "Error",
          "MM0001": "Warning"}  # minimesh's own: no Istio analyzer reports these


@dataclass(frozen=True)
class Message:
    code: str  # Istio's, e.g. "IST0101", or minimesh's own, e.g. "MM0001"
    name: str  # Istio's, e.g. "ReferencedResourceNotFound"
    text: str  # "VirtualService default/pricing http[0].route[0]: ..." — the resource first

    @property
    def level(self) -> str:
        return LEVELS[self.code]

    def __str__(self) -> str:
        """As `minimesh apply` warns: the text, then the code istioctl would give."""
        if self.code.startswith("MM"):
            return f"{self.text} (minimesh analyze: {self.code} {self.name}; istioctl analyze does not check this)"
        return f"{self.text} (istioctl analyze: {self.code} {self.name})"

    def istioctl(self) -> str:
        """As `istioctl analyze` prints it: 'Error [IST0101] (VirtualService pricing.default) details'."""
        kind, where, details = self.text.split(" ", 2)
        namespace, _, name = where.partition("/")
        return f"{self.level} [{self.code}] ({kind} {name}.{namespace}) {details}"
