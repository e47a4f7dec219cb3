"""Django's own account commands, replaced by audited ones.

``createsuperuser`` and ``changepassword`` come with ``django.contrib.auth`` and write no audit
event. This app is listed before ``django.contrib.auth`` in ``INSTALLED_APPS``, so its commands of
the same names take precedence: they go through the same services as the admin and
``create_staff`` (``members.services.user_save``, ``staff_role_set``), so each change is logged.
"""
