from django.http import HttpResponse


def tokens(request):
    return HttpResponse("todo")


def signup(request):
    return HttpResponse("todo")
