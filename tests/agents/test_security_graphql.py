"""GraphQL resolvers' arguments are request data (graphene, strawberry, ariadne), and request
data passed to a module's public helper is followed into it (one call)."""

from __future__ import annotations

from agents.analysis import analyze_code


def found(code: str, path: str = "schema.py") -> set[tuple[int, str, str]]:
    return {(f.line_start, f.rule, f.severity) for f in analyze_code(path, code, "security")}


def test_graphene_resolver_and_mutation_arguments_reach_sinks() -> None:
    code = (
        "import graphene, os, requests\n"
        "class Query(graphene.ObjectType):\n"
        "    def resolve_page(root, info, url):\n"
        "        return requests.get(url, timeout=5).text\n"
        "    def resolve_file(root, info, name):\n"
        "        return open(os.path.join('/data', name)).read()\n"
        "class Upload(graphene.Mutation):\n"
        "    def mutate(root, info, **kwargs):\n"
        "        return open(kwargs['path']).read()\n"
    )
    assert found(code) == {
        (4, "sec.ssrf", "high"),
        (6, "sec.path_traversal", "high"),
        (9, "sec.path_traversal", "high"),
    }


def test_graphene_resolver_with_sanitised_or_constant_values_is_silent() -> None:
    code = (
        "import graphene, os, requests\n"
        "class Query(graphene.ObjectType):\n"
        "    def resolve_file(root, info, name):\n"
        "        return open(os.path.join('/data', os.path.basename(name))).read()\n"
        "    def resolve_status(root, info, name):\n"
        "        return requests.get('https://status.example.com/' + name, timeout=5).text\n"
    )
    assert found(code) == set()


def test_strawberry_and_ariadne_resolvers_and_the_context_request() -> None:
    code = (
        "import strawberry, requests\n"
        "from ariadne import QueryType\n"
        "query = QueryType()\n"
        "@strawberry.type\n"
        "class Query:\n"
        "    @strawberry.field\n"
        "    def fetch(self, url: str) -> str:\n"
        "        return requests.get(url, timeout=5).text\n"
        "@query.field('doc')\n"
        "def resolve_doc(obj, info, name):\n"
        "    return open(name).read()\n"
        "@query.field('ctx')\n"
        "def resolve_ctx(obj, info):\n"
        "    return requests.get(info.context['request'].query_params['u'], timeout=3).text\n"
    )
    assert found(code) == {
        (8, "sec.ssrf", "high"),
        (11, "sec.path_traversal", "high"),
        (14, "sec.ssrf", "high"),
    }


def test_a_plain_method_with_an_info_parameter_is_not_a_resolver() -> None:
    code = (
        "import requests\n"
        "class Client:\n"
        "    def send(self, info, url):\n"
        "        return requests.get(url, timeout=5)\n"
    )
    assert found(code, "client.py") == set()


def test_request_data_through_a_public_helper_is_reported_at_the_call() -> None:
    code = (
        "import requests\n"
        "from flask import request\n"
        "def fetch(url):\n"
        "    return requests.get(url, timeout=5).text\n"
        "def proxy():\n"
        "    return fetch(request.args['u'])\n"
        "def fixed():\n"
        "    return fetch('https://example.com/x')\n"
        "def relay(u):\n"
        "    return fetch(u)\n"
    )
    assert found(code, "views.py") == {(6, "sec.ssrf", "high")}
