"""Build this example's data from ../../support-desk/data/{train,dev}.csv (BANKING77, CC BY 4.0).

Every BANKING77 intent is mapped to the next action the bank's operations team takes for such a
ticket (ACTION_OF_INTENT below, one line per intent). Texts and intents are copied unchanged; the
``action`` column is our derivation, not part of BANKING77. Rows keep their source order.
Run from anywhere: ``python examples/ops-decisions/data/make_data.py``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "support-desk" / "data"

SELF_SERVICE = "self_service_answer"  # a help-centre answer or an in-app step settles it
REFUND = "refund_review"  # the customer was charged wrongly or wants money back
BLOCK = "block_and_replace_card"  # the card is lost, compromised or used by someone else
IDENTITY = "identity_check"  # nothing can proceed until the customer's identity is verified
PAYMENTS = "escalate_to_payments_team"  # a transfer, top-up or payment failed or went missing
ACTIONS = [SELF_SERVICE, REFUND, BLOCK, IDENTITY, PAYMENTS]

ACTION_OF_INTENT = {
    # How-to and status questions: answered from the help centre or done in the app.
    "activate_my_card": SELF_SERVICE,
    "age_limit": SELF_SERVICE,
    "apple_pay_or_google_pay": SELF_SERVICE,
    "atm_support": SELF_SERVICE,
    "automatic_top_up": SELF_SERVICE,
    "card_about_to_expire": SELF_SERVICE,
    "card_acceptance": SELF_SERVICE,
    "card_arrival": SELF_SERVICE,
    "card_delivery_estimate": SELF_SERVICE,
    "card_linking": SELF_SERVICE,
    "card_not_working": SELF_SERVICE,
    "cash_withdrawal_charge": SELF_SERVICE,
    "change_pin": SELF_SERVICE,
    "contactless_not_working": SELF_SERVICE,
    "country_support": SELF_SERVICE,
    "disposable_card_limits": SELF_SERVICE,
    "exchange_charge": SELF_SERVICE,
    "exchange_rate": SELF_SERVICE,
    "exchange_via_app": SELF_SERVICE,
    "fiat_currency_support": SELF_SERVICE,
    "get_disposable_virtual_card": SELF_SERVICE,
    "get_physical_card": SELF_SERVICE,
    "getting_spare_card": SELF_SERVICE,
    "getting_virtual_card": SELF_SERVICE,
    "order_physical_card": SELF_SERVICE,
    "pending_card_payment": SELF_SERVICE,  # pending items: the answer is how long they take
    "pending_cash_withdrawal": SELF_SERVICE,
    "pending_top_up": SELF_SERVICE,
    "pending_transfer": SELF_SERVICE,
    "receiving_money": SELF_SERVICE,
    "supported_cards_and_currencies": SELF_SERVICE,
    "top_up_by_bank_transfer_charge": SELF_SERVICE,
    "top_up_by_card_charge": SELF_SERVICE,
    "top_up_by_cash_or_cheque": SELF_SERVICE,
    "top_up_limits": SELF_SERVICE,
    "topping_up_by_card": SELF_SERVICE,
    "transfer_into_account": SELF_SERVICE,
    "transfer_timing": SELF_SERVICE,
    "virtual_card_not_working": SELF_SERVICE,
    "visa_or_mastercard": SELF_SERVICE,
    # Wrong or unwanted charges: someone reviews whether money goes back.
    "Refund_not_showing_up": REFUND,
    "card_payment_fee_charged": REFUND,
    "card_payment_wrong_exchange_rate": REFUND,
    "direct_debit_payment_not_recognised": REFUND,  # a mandate dispute, not a card at risk
    "extra_charge_on_statement": REFUND,
    "request_refund": REFUND,
    "transaction_charged_twice": REFUND,
    "transfer_fee_charged": REFUND,
    "wrong_amount_of_cash_received": REFUND,
    "wrong_exchange_rate_for_cash_withdrawal": REFUND,
    # The card may be in someone else's hands: block it first, then send a new one.
    "card_payment_not_recognised": BLOCK,
    "card_swallowed": BLOCK,
    "cash_withdrawal_not_recognised": BLOCK,
    "compromised_card": BLOCK,
    "lost_or_stolen_card": BLOCK,
    # Access or account changes that need the customer verified first.
    "edit_personal_details": IDENTITY,
    "lost_or_stolen_phone": IDENTITY,  # the app is re-enabled on a new phone after verification
    "passcode_forgotten": IDENTITY,
    "pin_blocked": IDENTITY,
    "terminate_account": IDENTITY,
    "unable_to_verify_identity": IDENTITY,
    "verify_my_identity": IDENTITY,
    "verify_source_of_funds": IDENTITY,
    "verify_top_up": IDENTITY,
    "why_verify_identity": IDENTITY,
    # Money that failed, bounced or did not arrive: the payments team traces it.
    "balance_not_updated_after_bank_transfer": PAYMENTS,
    "balance_not_updated_after_cheque_or_cash_deposit": PAYMENTS,
    "beneficiary_not_allowed": PAYMENTS,
    "cancel_transfer": PAYMENTS,
    "declined_card_payment": PAYMENTS,
    "declined_cash_withdrawal": PAYMENTS,
    "declined_transfer": PAYMENTS,
    "failed_transfer": PAYMENTS,
    "reverted_card_payment?": PAYMENTS,
    "top_up_failed": PAYMENTS,
    "top_up_reverted": PAYMENTS,
    "transfer_not_received_by_recipient": PAYMENTS,
}


def main() -> None:
    intents = json.loads((SOURCE / "categories.json").read_text(encoding="utf-8"))
    if sorted(intents) != sorted(ACTION_OF_INTENT):
        raise SystemExit("ACTION_OF_INTENT must map exactly the 77 BANKING77 intents")
    for split in ("train", "dev"):
        with (
            (SOURCE / f"{split}.csv").open(newline="", encoding="utf-8") as source,
            (HERE / f"{split}.csv").open("w", newline="", encoding="utf-8") as target,
        ):
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(["text", "intent", "action"])
            for row in csv.DictReader(source):
                intent = row["category"]
                writer.writerow([row["text"], intent, ACTION_OF_INTENT[intent]])
    (HERE / "actions.json").write_text(json.dumps(ACTIONS, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
