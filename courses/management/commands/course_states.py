from config.doc_command import GeneratedDocCommand
from courses.states_doc import render


class Command(GeneratedDocCommand):
    help = "Print (or write with --output) the course state graph as Markdown + Mermaid."
    render = staticmethod(render)
