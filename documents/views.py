from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from documents.models import Document


@login_required
def document_list(request):
    documents = Document.objects.visible_to(request.user)
    return render(request, "documents/list.html", {"documents": documents})
