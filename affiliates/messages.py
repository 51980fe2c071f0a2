"""Every user-facing sentence of the affiliate program, in plain English, in one place."""

NOT_ADULT = "You must be 18 or older to join the affiliate program: tick the box to confirm it."
NO_TERMS = "Read and accept the program terms to join: tick the box."
BAD_PAYPAL = "Enter the e-mail address of your PayPal account, such as you@example.com."
BAD_WEBSITE = "Enter your website as a full address starting with https:// (or leave it empty)."
ALREADY_MEMBER = "You are already a member of the affiliate program."
JOINED = "Welcome to the affiliate program. Share your link below."
REFUSED = "Your application to the affiliate program was refused."
REVOKED = "Your affiliate membership was revoked: your link no longer earns commissions."
BLOCKED = (
    "Your affiliate account was blocked for self-referral: it earns no commissions and its "
    "balance is not paid."
)
SELF_SAME_ACCOUNT = "the referred account is the affiliate's own"
SELF_SAME_EMAIL = "the referred account's e-mail is the affiliate's e-mail or PayPal address"
SELF_SAME_BROWSER = "the referral landed in a browser logged in as the affiliate"
