"""Request shapes more than one simulator accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Body(BaseModel):
    """Unknown fields are ignored, as most vendor APIs do (and schema drift needs)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Address(Body):
    name: NonEmpty
    street: NonEmpty
    city: NonEmpty
    postal_code: Annotated[str, StringConstraints(max_length=20)]
    country: Country

    def to_dict(self) -> dict[str, str]:
        return self.model_dump()


class Money(Body):
    amount: Annotated[str, StringConstraints(pattern=r"^-?\d{1,12}(\.\d{1,4})?$")]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

    def to_dict(self) -> dict[str, str]:
        return {"amount": self.amount, "currency": self.currency}


def money(amount: Decimal, currency: str = "EUR") -> dict[str, str]:
    return {"amount": f"{amount.quantize(Decimal('0.01'))}", "currency": currency}


Qty = Annotated[int, Field(ge=1, le=1_000_000)]
