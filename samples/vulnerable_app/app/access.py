"""Order pages of the demo shop (Django): who may see and change which order."""

from django.contrib.auth.decorators import login_required, user_passes_test
from django.shortcuts import get_object_or_404, redirect, render

from .models import Order


@login_required
def order_detail(request, order_id):
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "order.html", {"order": order})


@login_required
def my_order(request, order_id):
    order = get_object_or_404(Order, pk=order_id, customer=request.user)
    return render(request, "order.html", {"order": order})


def cancel_order(request, order_id):
    Order.objects.filter(pk=order_id).update(status="cancelled")
    return redirect("/orders/")


@login_required
def archive_orders(request):
    Order.objects.filter(customer=request.user, status="done").update(archived=True)
    return redirect("/orders/")


def admin_refund_all(request):
    Order.objects.all().update(status="refunded")
    return redirect("/orders/")


@user_passes_test(lambda u: u.is_staff)
def admin_close_all(request):
    Order.objects.all().update(status="closed")
    return redirect("/orders/")
