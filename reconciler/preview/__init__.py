"""The schedule preview: who wins when, in local time, for people (``flux schedule``, a
pull request's comment). It reads the site model and the control core's evaluation of the
schedule; neither of them knows about it.
"""
