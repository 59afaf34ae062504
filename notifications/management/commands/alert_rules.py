from config.doc_command import GeneratedDocCommand
from notifications.rules_doc import render


class Command(GeneratedDocCommand):
    help = "Print (or write with --output) the alert rules and thresholds as Markdown."
    render = staticmethod(render)
