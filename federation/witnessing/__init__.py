"""This hub as a witness of other hubs' logs (C2SP tlog-witness; docs/transparency.md,
"Witnesses"): checking and cosigning the checkpoints they submit (``witness``), its HTTP interface
at /api/v1/witness/ (``api``, ``urls``), the logs it witnesses and the split-view evidence it
keeps (``admin``).

Apart from this hub's own log (``federation.transparency``), whose checkpoint and cosignature
formats it uses; the transparency package never imports this one. The models (``WitnessedLog``,
``SplitViewEvidence``) stay in ``federation/transparency/models.py`` so that they keep their app
label and migrations.
"""
