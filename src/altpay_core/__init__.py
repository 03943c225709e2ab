"""altpay-core: the domain rules of B2B invoice payments.

Partners onboard customer companies, give each company's people a login, and
get their invoices paid by card or bank debit, in full or in part. This package
owns that domain's rules; storage, HTTP and payment processors plug in through
its ports.

>>> from altpay_core import Money
>>> Money("12.50", "USD") + Money("0.50", "USD")
Money('13.00', 'USD')
"""

from importlib.metadata import version as _version

from .customer import (
    AccessRequest,
    AccessRequestStatus,
    Customer,
    CustomerDetails,
    CustomerDraft,
    CustomerStatus,
    CustomerUser,
    DraftStep,
)
from .errors import (
    AltpayError,
    ConcurrencyConflict,
    CurrencyMismatch,
    FieldError,
    InvariantViolation,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from .events import (
    CustomerArchived,
    CustomerCreated,
    CustomerUpdated,
    Event,
    InvoiceArchived,
    InvoiceCreated,
    InvoicePaid,
    InvoiceUpdated,
    PaymentChargeback,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from .money import Currency, Money, Rounding
from .partner import (
    Action,
    CardFeeBearer,
    CardFeePolicy,
    Integration,
    Partner,
    Role,
    Tag,
    TeamMember,
)
from .ports import (
    AccessRequestRepository,
    CustomerRepository,
    Outbox,
    OutboxMessage,
    Page,
    PartnerRepository,
    UnitOfWork,
)
from .serialization import from_dict, from_json, to_dict, to_json
from .values import (
    EIN,
    AccessRequestId,
    Address,
    CustomerId,
    EmailAddress,
    EntityId,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    PaymentMethodId,
    TagId,
    TeamMemberId,
    UserId,
)

__version__ = _version("altpay-core")

__all__ = [
    "AccessRequest",
    "AccessRequestId",
    "AccessRequestRepository",
    "AccessRequestStatus",
    "Action",
    "Address",
    "AltpayError",
    "CardFeeBearer",
    "CardFeePolicy",
    "ConcurrencyConflict",
    "Currency",
    "CurrencyMismatch",
    "Customer",
    "CustomerArchived",
    "CustomerCreated",
    "CustomerDetails",
    "CustomerDraft",
    "CustomerId",
    "CustomerRepository",
    "CustomerStatus",
    "CustomerUpdated",
    "CustomerUser",
    "DraftStep",
    "EIN",
    "EmailAddress",
    "EntityId",
    "Event",
    "ExternalRef",
    "FieldError",
    "Integration",
    "InvariantViolation",
    "InvoiceArchived",
    "InvoiceCreated",
    "InvoiceId",
    "InvoicePaid",
    "InvoiceUpdated",
    "Money",
    "NotFound",
    "Outbox",
    "OutboxMessage",
    "Page",
    "Partner",
    "PartnerId",
    "PartnerRepository",
    "PaymentChargeback",
    "PaymentFailed",
    "PaymentId",
    "PaymentMethodId",
    "PaymentRefunded",
    "PaymentSucceeded",
    "PermissionDenied",
    "Role",
    "Rounding",
    "Tag",
    "TagId",
    "TeamMember",
    "TeamMemberId",
    "UnitOfWork",
    "UserId",
    "ValidationError",
    "from_dict",
    "from_json",
    "to_dict",
    "to_json",
]
