from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation"

    def ready(self) -> None:
        from federation import lookups
        from federation.api import views

        lookups.register()
        views.install()
