"""What tests share: named parties, helpers by subject, the live-hub harnesses and the vector
generators. Test modules import from here and never from one another (tests/test_code_layout.py).
"""
