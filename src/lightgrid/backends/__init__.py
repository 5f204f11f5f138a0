"""Workload managers behind one interface (`Backend`), one implementation per module."""
