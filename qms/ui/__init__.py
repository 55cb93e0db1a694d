"""Screens of the quality system (deviations, CAPA, change control, training, QA dashboard).

Thin adapters: a form reads what the person typed, one service does the work, and the page
shows the service's refusal next to what they typed.
"""
