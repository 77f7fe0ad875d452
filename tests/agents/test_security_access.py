"""Access-control rules of the security lens (py_access): IDOR, missing authentication on
state-changing views, privileged actions open to anyone. Each class has a case that must be
reported and a near twin that must stay silent."""

from __future__ import annotations

from agents.analysis import analyze_code


def found(code: str, path: str = "views.py") -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in analyze_code(path, code, "security")}


def access(code: str, path: str = "views.py") -> set[tuple[int, str]]:
    return {(line, rule) for line, rule in found(code, path) if rule.startswith("sec.missing")}


DJANGO = (
    "from django.shortcuts import get_object_or_404, render\n"
    "from django.contrib.auth.decorators import login_required\n"
    "from .models import Note\n"
)


def test_object_fetched_by_url_id_without_owner_filter_is_idor() -> None:
    code = DJANGO + (
        "@login_required\n"
        "def note(request, pk):\n"
        "    n = get_object_or_404(Note, pk=pk)\n"
        "    return render(request, 'n.html', {'n': n})\n"
    )
    [f] = analyze_code("views.py", code, "security")
    assert (f.rule, f.line_start, f.cwe) == ("sec.idor", 6, 639)
    assert f.confidence < 0.5 and "Heuristic" in f.detail


def test_object_scoped_to_the_user_or_a_parent_or_checked_is_not_idor() -> None:
    code = DJANGO + (
        "@login_required\n"
        "def mine(request, pk):\n"
        "    n = get_object_or_404(Note, pk=pk, owner=request.user)\n"
        "    return render(request, 'n.html', {'n': n})\n"
        "def in_run(request, run_id, pk):\n"
        "    run = runs_for(request).get(pk=run_id, team=team_of(request))\n"
        "    return get_object_or_404(Task, run=run, pk=pk)\n"
        "def checked(request, pk):\n"
        "    n = Note.objects.get(pk=pk)\n"
        "    if not request.user.has_perm('view', n):\n"
        "        raise PermissionDenied\n"
        "    return n\n"
    )
    assert found(code) == set()


def test_flask_sqlalchemy_lookup_by_route_id_is_idor() -> None:
    code = (
        "from flask import Flask, jsonify, request\n"
        "app = Flask(__name__)\n"
        "@app.route('/orders/<int:oid>')\n"
        "def order(oid):\n"
        "    return jsonify(Order.query.get(oid).to_dict())\n"
        "@app.route('/orders/')\n"
        "def orders():\n"
        "    return jsonify([o.to_dict() for o in Order.query.filter_by(id=1)])\n"
        "@app.route('/api/orders/<int:oid>')\n"
        "def api_order(oid):\n"
        "    return jsonify(db.session.get(Order, oid).to_dict())\n"
    )
    assert found(code) == {(5, "sec.idor"), (11, "sec.idor")}


def test_unprotected_write_view_in_a_module_that_protects_others() -> None:
    code = DJANGO + (
        "@login_required\n"
        "def edit(request, pk):\n"
        "    Note.objects.filter(pk=pk, owner=request.user).update(text=request.POST['t'])\n"
        "def wipe(request):\n"
        "    Note.objects.all().delete()\n"
        "    return render(request, 'done.html')\n"
        "def show(request):\n"
        "    return render(request, 'list.html', {'notes': Note.objects.all()})\n"
        "def register(request):\n"
        "    User.objects.create(name=request.POST['n'])\n"
    )
    findings = {f.rule: f for f in analyze_code("views.py", code, "security")}
    assert access(code) == {(7, "sec.missing_auth")}
    assert findings["sec.missing_auth"].cwe == 862


def test_write_views_are_not_flagged_when_no_view_of_the_module_uses_auth() -> None:
    # Nothing shows this project protects views at all (an API behind a gateway, a demo): the
    # rule does not guess.
    code = DJANGO + (
        "def wipe(request):\n"
        "    Note.objects.all().delete()\n"
        "    return render(request, 'd.html')\n"
    )
    assert access(code) == set()


def test_class_based_views_with_an_auth_mixin_count_as_protected() -> None:
    code = (
        "from django.views import View\n"
        "from django.contrib.auth.mixins import LoginRequiredMixin\n"
        "class Edit(LoginRequiredMixin, View):\n"
        "    def post(self, request, pk):\n"
        "        Note.objects.filter(pk=pk, owner=request.user).update(done=True)\n"
        "class Drop(View):\n"
        "    def post(self, request):\n"
        "        Note.objects.all().delete()\n"
        "class Safe(LoginRequiredMixin, View):\n"
        "    def post(self, request):\n"
        "        Note.objects.all().delete()\n"
    )
    assert access(code) == {(7, "sec.missing_auth")}


def test_admin_action_without_role_check_is_missing_authorization() -> None:
    code = (
        "from flask import Flask\n"
        "app = Flask(__name__)\n"
        "@app.route('/admin/users/<int:uid>/delete', methods=['POST'])\n"
        "def delete_user(uid):\n"
        "    db.session.execute('DELETE FROM users WHERE id = ?', (uid,))\n"
        "    db.session.commit()\n"
        "    return 'ok'\n"
        "@app.route('/admin/stats')\n"
        "@admin_required\n"
        "def stats():\n"
        "    return 'x'\n"
        "@app.route('/admin/purge', methods=['POST'])\n"
        "def purge():\n"
        "    if not current_user.is_admin:\n"
        "        abort(403)\n"
        "    db.session.commit()\n"
    )
    [f] = [f for f in analyze_code("app.py", code, "security") if f.rule == "sec.missing_authz"]
    assert (f.line_start, f.cwe) == (4, 285)


def test_drf_viewset_with_allow_any_on_writes() -> None:
    code = (
        "from rest_framework import viewsets\n"
        "from rest_framework.decorators import api_view, permission_classes\n"
        "from rest_framework.permissions import AllowAny, IsAuthenticated\n"
        "class NoteViewSet(viewsets.ModelViewSet):\n"
        "    permission_classes = [AllowAny]\n"
        "class Safe(viewsets.ModelViewSet):\n"
        "    permission_classes = [IsAuthenticated]\n"
        "class Public(viewsets.ReadOnlyModelViewSet):\n"
        "    permission_classes = [AllowAny]\n"
        "class SignupView(generics.CreateAPIView):\n"
        "    permission_classes = (AllowAny,)\n"
        "@api_view(['POST'])\n"
        "@permission_classes([AllowAny])\n"
        "def add_note(request):\n"
        "    return Response(status=201)\n"
        "@api_view(['GET'])\n"
        "@permission_classes([AllowAny])\n"
        "def list_notes(request):\n"
        "    return Response([])\n"
    )
    assert access(code, "api.py") == {(4, "sec.missing_authz"), (14, "sec.missing_authz")}


def test_role_taken_from_what_the_client_sends() -> None:
    code = (
        "from flask import request\n"
        "def panel():\n"
        "    if request.cookies.get('admin') == 'true':\n"
        "        return 'all users'\n"
        "    if request.COOKIES['uname'] == 'admin':\n"
        "        return 'reset'\n"
        "    if request.args.get('page') == '2':\n"
        "        return 'page two'\n"
        "    if current_user.role == 'admin':\n"
        "        return 'ok'\n"
    )
    assert access(code, "app.py") == {(3, "sec.missing_authz"), (5, "sec.missing_authz")}
