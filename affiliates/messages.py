"""Every user-facing sentence of the affiliate program, in plain English, in one place. Each is
marked with ``N_()`` for the catalogue (see README "Languages"): the Affiliate page shows it in
its language (``_()`` in web/affiliate.py and the template; a stored note through
``web.engine_messages``)."""

from ccbb.marks import N_

NOT_ADULT = N_("You must be 18 or older to join the affiliate program: tick the box to confirm it.")
NO_TERMS = N_("Read and accept the program terms to join: tick the box.")
BAD_PAYPAL = N_("Enter the e-mail address of your PayPal account, such as you@example.com.")
BAD_WEBSITE = N_("Enter your website as a full address starting with https:// (or leave it empty).")
ALREADY_MEMBER = N_("You are already a member of the affiliate program.")
JOINED = N_("Welcome to the affiliate program. Share your link below.")
REFUSED = N_("Your application to the affiliate program was refused.")
REVOKED = N_("Your affiliate membership was revoked: your link no longer earns commissions.")
BLOCKED = N_(
    "Your affiliate account was blocked for self-referral: it earns no commissions and its "
    "balance is not paid."
)
SELF_SAME_ACCOUNT = N_("the referred account is the affiliate's own")
SELF_SAME_EMAIL = N_("the referred account's e-mail is the affiliate's e-mail or PayPal address")
SELF_SAME_BROWSER = N_("the referral landed in a browser logged in as the affiliate")
REVERSAL_NOTE = N_("{kind} of {receipt}")  # a reversed commission's note: "RFND of P3RGBKGB"
# what PayPal's mail to a paid affiliate says (one subject for the whole batch: English)
PAYOUT_EMAIL_SUBJECT = "Your ClickClickBankBank affiliate commissions"
PAYOUT_NOTE = "ClickClickBankBank affiliate commissions, payout of {day}"
