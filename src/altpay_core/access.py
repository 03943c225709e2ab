"""Who may view and pay an invoice (rule I1): the one place that answers it.

An invoice belongs to one customer of its partner. The users of that
customer, and only they, may view it and pay it, as long as neither the
customer nor the invoice is archived (C8, I4). A team member of the partner
may look at a customer's invoices as its users do through a read-only
:class:`Impersonation`, which sees the same and may pay nothing.

>>> from altpay_core.access import InvoiceAccess
>>> InvoiceAccess.VIEW.may_pay
False

Every function takes the invoice, the customer the viewer is logged in to
(the invoice's customer, for any access at all) and the viewer: a
:class:`~altpay_core.customer.CustomerUser`, a user's id, or an
:class:`Impersonation`. A team member (or their id) is not a user of the
customer: no access, and ``PermissionDenied`` when paying; they look
through an impersonation. Access says *who*; whether the invoice can take a
payment right now (open, with a balance) is for
:func:`altpay_core.payment.pay_invoices` to check (I4, I5).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeAlias

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor
from .customer import Customer, CustomerUser
from .errors import FieldErrors, InvariantViolation, PermissionDenied, ValidationError
from .invoice import Invoice
from .partner import Action, Partner, TeamMember
from .values import CustomerId, PartnerId, TeamMemberId, UserId

__all__ = [
    "Impersonation",
    "InvoiceAccess",
    "Viewer",
    "invoice_access",
    "may_pay",
    "may_view",
    "require_pay",
    "require_view",
    "visible_invoices",
]


class InvoiceAccess(_fields.Choices, enum.Enum):
    """What a viewer may do with an invoice."""

    NONE = "none"
    """Nothing: not theirs, or archived."""
    VIEW = "view"
    """See it (a read-only impersonation)."""
    PAY = "pay"
    """See it and pay it (a user of the invoice's customer)."""

    @property
    def may_view(self) -> bool:
        """True for ``VIEW`` and ``PAY``."""
        return self is not InvoiceAccess.NONE

    @property
    def may_pay(self) -> bool:
        """True for ``PAY`` only."""
        return self is InvoiceAccess.PAY


@checked_constructor
@attrs.frozen(kw_only=True)
class Impersonation:
    """A partner's team member looking at a customer's invoices as its users
    see them: read-only, it may pay nothing (I1).

    Start one with :meth:`start`, which checks that the member may view
    invoices and that the customer is the partner's. The value is then
    trusted as given, as a user's id is: it is not checked against the team
    again. Start it again from the partner as stored for each request, so
    that a member removed since, or whose role changed, is refused.
    """

    partner_id: PartnerId
    customer_id: CustomerId
    team_member_id: TeamMemberId

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        for name, kind, label in (
            ("partner_id", PartnerId, "a partner id"),
            ("customer_id", CustomerId, "a customer id"),
            ("team_member_id", TeamMemberId, "a team member id"),
        ):
            found.check("", _fields.argument, name, getattr(self, name), kind, label)
        found.raise_if_any()

    @classmethod
    @checked_arguments
    def start(
        cls, partner: Partner, customer: Customer, *, by: TeamMemberId | TeamMember
    ) -> Impersonation:
        """Impersonate ``customer`` (read-only) as team member ``by``."""
        _fields.argument("partner", partner, Partner, "a Partner")
        _fields.argument("customer", customer, Customer, "a Customer")
        member = partner.authorize(by, Action.VIEW_INVOICES)
        if customer.partner_id != partner.id:
            raise InvariantViolation(
                f"customer {customer.id} is not a customer of {partner.name}",
                rule="I1",
                path="customer",
            )
        return cls(partner_id=partner.id, customer_id=customer.id, team_member_id=member.id)


Viewer: TypeAlias = CustomerUser | UserId | Impersonation | TeamMember | TeamMemberId
"""Who is looking: a customer's user (or their id), an impersonation, or a
partner's team member (or their id), who has no access of their own."""


@checked_arguments
def invoice_access(invoice: Invoice, customer: Customer, viewer: Viewer) -> InvoiceAccess:
    """What ``viewer``, logged in to ``customer``, may do with ``invoice``.

    ``PAY`` for a user of the invoice's customer, ``VIEW`` for a read-only
    impersonation of that customer, ``NONE`` for anyone else (a team member
    too: they view through an :class:`Impersonation`), for another
    partner's invoice, and whenever the customer or the invoice is archived.
    An ``invoice``, ``customer`` or ``viewer`` that is not one is a
    ``wrong_type`` error.
    """
    _fields.argument("invoice", invoice, Invoice, "an Invoice")
    _fields.argument("customer", customer, Customer, "a Customer")
    _viewer(viewer)
    if (
        customer.id != invoice.customer_id
        or customer.partner_id != invoice.partner_id
        or not customer.is_active
        or invoice.is_archived
    ):
        return InvoiceAccess.NONE
    if isinstance(viewer, Impersonation):
        if viewer.partner_id == invoice.partner_id and viewer.customer_id == invoice.customer_id:
            return InvoiceAccess.VIEW
        return InvoiceAccess.NONE
    if isinstance(viewer, TeamMember | TeamMemberId):
        return InvoiceAccess.NONE
    user_id = viewer.id if isinstance(viewer, CustomerUser) else viewer
    if any(user.id == user_id for user in customer.users):
        return InvoiceAccess.PAY
    return InvoiceAccess.NONE


def _viewer(viewer: object) -> None:
    if not isinstance(viewer, Viewer):
        raise ValidationError.single(
            "viewer",
            "wrong_type",
            "'viewer' must be a CustomerUser, a user id, an Impersonation or a team member "
            f"(got {type(viewer).__name__})",
        )


@checked_arguments
def may_view(invoice: Invoice, customer: Customer, viewer: Viewer) -> bool:
    """Whether ``viewer`` may see ``invoice`` (see :func:`invoice_access`)."""
    return invoice_access(invoice, customer, viewer).may_view


@checked_arguments
def may_pay(invoice: Invoice, customer: Customer, viewer: Viewer) -> bool:
    """Whether ``viewer`` is allowed to pay ``invoice`` (see
    :func:`invoice_access`): who, not whether the invoice takes a payment
    now; a void or paid invoice takes none (``invoice.accepts_payments``,
    I4, checked by :func:`~altpay_core.payment.pay_invoices`)."""
    return invoice_access(invoice, customer, viewer).may_pay


def _role(viewer: Viewer) -> str:
    if isinstance(viewer, Impersonation):
        return "read-only impersonation"
    if isinstance(viewer, TeamMember | TeamMemberId):
        return "team member"
    return "customer user"


@checked_arguments
def require_view(invoice: Invoice, customer: Customer, viewer: Viewer) -> None:
    """Raise :class:`~altpay_core.errors.PermissionDenied` unless ``viewer``
    may see ``invoice``: naming the invoice by its id, not its number, which
    that viewer may not see."""
    if not may_view(invoice, customer, viewer):
        raise PermissionDenied(role=_role(viewer), action=f"view invoice {invoice.id}")


@checked_arguments
def require_pay(invoice: Invoice, customer: Customer, viewer: Viewer) -> None:
    """Raise :class:`~altpay_core.errors.PermissionDenied` unless ``viewer``
    may pay ``invoice`` (an impersonation never may)."""
    access = invoice_access(invoice, customer, viewer)
    if not access.may_pay:
        # Its number only to a viewer who may see it: the id, which the
        # caller gave, to anyone else.
        shown = invoice.number if access.may_view else invoice.id
        raise PermissionDenied(role=_role(viewer), action=f"pay invoice {shown}")


@checked_arguments
def visible_invoices(
    invoices: Iterable[Invoice], customer: Customer, viewer: Viewer
) -> tuple[Invoice, ...]:
    """The invoices ``viewer`` may see, in the order given (each must be an
    ``Invoice``: anything else is a ``wrong_type`` error)."""
    _fields.argument("customer", customer, Customer, "a Customer")
    _viewer(viewer)
    given = _fields.listed("invoices", invoices)  # read once the rest is known good
    found = FieldErrors()
    for index, invoice in enumerate(given):
        found.check("", _fields.argument, f"invoices[{index}]", invoice, Invoice, "an Invoice")
    if found:
        raise ValidationError(found.errors)
    return tuple(invoice for invoice in given if may_view(invoice, customer, viewer))
