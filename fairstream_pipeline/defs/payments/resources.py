"""FairStream's own account and the folder released payment files go to (FAIRSTREAM_PAYMENTS_*)."""

from __future__ import annotations

import dagster as dg

from fairstream_pipeline.defs.resources import env_var
from fairstream_pipeline.lib.payments.bank_details import check_payment_details
from fairstream_pipeline.lib.payments.sepa_credit_transfer import Debtor
from fairstream_pipeline.settings import get_settings

NOT_CONFIGURED = (
    "not configured: FAIRSTREAM_PAYMENTS_DEBTOR_NAME and FAIRSTREAM_PAYMENTS_DEBTOR_IBAN are empty, "
    "so no payment file is built"
)


class PaymentsResource(dg.ConfigurableResource):
    """The debtor of every SEPA payment file (FairStream's account) and where a released file is
    written. The IBAN comes from the environment at run time (``dg.EnvVar``): never a literal in the
    run config, never logged."""

    debtor_name: str = ""
    debtor_iban: str = ""
    debtor_bic: str = ""
    out_dir: str = "data/payments"

    @property
    def configured(self) -> bool:
        return bool(self.debtor_name.strip() and self.debtor_iban.strip())

    def debtor(self) -> Debtor:
        """FairStream's account; a bad IBAN or BIC fails the step, naming the setting, not retried."""
        verdict = check_payment_details(self.debtor_iban, self.debtor_bic or None)
        if verdict.problem:
            raise dg.Failure(
                description=f"FAIRSTREAM_PAYMENTS_DEBTOR_IBAN/BIC: {verdict.problem}", allow_retries=False
            )
        return Debtor(self.debtor_name.strip(), verdict.iban, verdict.bic)


def payments_from_env() -> PaymentsResource:
    """The ``payments`` resource from the settings (FairStream's debtor account; the IBAN as an
    ``EnvVar``, resolved in the run's process)."""
    settings = get_settings()
    return PaymentsResource(
        debtor_name=settings.payments_debtor_name,
        debtor_iban=env_var("payments_debtor_iban"),
        debtor_bic=settings.payments_debtor_bic,
        out_dir=settings.payments_out_dir,
    )
