"""The testing kit: Hypothesis strategies, contract suites and pytest fixtures.

Install it with the ``testing`` extra::

    pip install 'altpay-core[testing]'

``altpay_core.testing.strategies`` has a strategy for every public type; once
the package is installed they are also registered with Hypothesis, so
``st.from_type(Customer)`` works in any test.
"""
