from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "members.accounts"
    label = "members_accounts"
    verbose_name = "Audited account commands"
